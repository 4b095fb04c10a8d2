package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// ErrClosed is returned by operations on a closed Broker or Reader.
var ErrClosed error = &sentinel{"broker: closed", "stopping"}

// readyTimeout bounds Ready.
const readyTimeout = 3 * time.Second

// Options are the dependencies a Broker gets from its owner.
type Options struct {
	// Logger receives the broker's and the embedded nats-server's messages.
	// Nil discards them.
	Logger *slog.Logger
	// Now is the clock for ingest times and lag. Nil means time.Now.
	Now func() time.Time
	// Registerer gets the broker's metrics (one Broker per registry: the
	// names are fixed). Nil means they are not exported.
	Registerer prometheus.Registerer
}

// Broker is the log of one pipeline: its topics' partitions on JetStream,
// the committed offsets of its consumers and their lag. All methods are
// safe for concurrent use; Close must be the last call.
type Broker struct {
	p        *pipelines.Pipeline
	log      *slog.Logger
	now      func() time.Time
	prefix   string // stream name prefix, e.g. "LF"
	subject  string // subject prefix, e.g. "lf"
	replicas int
	// readOnly marks a view of another site's log (OpenRemote): it looks
	// buckets up instead of creating them, and never appends.
	readOnly bool
	// cfgPath is where the connection's settings are in the pipeline
	// file, for messages: "broker", or a source's path.
	cfgPath string

	ns   *server.Server // nil when connected to an external cluster
	disk *diskWatch     // the embedded server's disk; nil for an external cluster
	nc   *nats.Conn
	js   jetstream.JetStream

	topics    map[string]*topic
	idSeeds   [2]maphash.Seed   // of the dedup indexes' id hashes
	logTopics []pipelines.Topic // every topic of the log, in order
	metrics   *metrics

	kvMu      sync.Mutex
	offsetsKV jetstream.KeyValue
	cm        *clusterMetrics // once Join ran

	lagMu    sync.Mutex
	lagCache map[lagKey]entryTimes

	progressMu sync.Mutex
	progress   map[consumerPart]progressState // read reports (Progress)

	mu      sync.Mutex
	closed  bool
	readers map[*Reader]struct{}

	stop    chan struct{}  // closed by Close; stops the marker and progress loops
	wg      sync.WaitGroup // the marker and progress loops
	ncDone  chan struct{}  // closed when the connection is closed
	closeMu sync.Mutex
}

// Open connects to the pipeline's log: an embedded nats-server under
// <data_dir>/broker when p.Broker.URL is empty (a node of a cluster with the
// other processes' embedded servers when p.Broker.Cluster is set: Open then
// waits, until ctx ends, for enough nodes to form it), otherwise the external
// cluster at the comma-separated URLs, which it reconnects to forever. A
// cluster that cannot be reached does not fail Open (Ready reports it); a
// server that refuses the credentials or the TLS settings does, with an
// error that says which settings to check. It does
// not create streams; call EnsureTopics. p must not change while the Broker
// is open.
func Open(ctx context.Context, p *pipelines.Pipeline, opts Options) (*Broker, error) {
	b, err := newBroker(p, opts)
	if err != nil {
		return nil, err
	}
	// The log holds the user topics and the ones the pipeline derives: a
	// topic of rows per view and a dead-letter topic per sink.
	b.logTopics = p.LogTopics()
	for i := range b.logTopics {
		b.topics[b.logTopics[i].Name] = newTopic(b, &b.logTopics[i])
	}

	if p.Broker.URL == "" {
		err = b.startEmbedded()
	} else {
		err = b.connectExternal(ctx)
	}
	if err != nil {
		b.metrics.unregister()
		return nil, err
	}
	b.js, err = jetstream.New(b.nc)
	if err != nil {
		b.shutdown()
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	if err := b.waitClustered(ctx); err != nil {
		b.metrics.unregister()
		b.shutdown()
		return nil, err
	}
	b.wg.Add(2)
	go b.every(markerInterval, b.writeMarkers)
	go b.every(progressInterval, b.writeProgress)
	if b.disk != nil {
		b.wg.Go(func() { b.watchDisk(b.disk) })
	}
	return b, nil
}

// newBroker makes the Broker of p, not yet connected, with its metrics
// registered.
func newBroker(p *pipelines.Pipeline, opts Options) (*Broker, error) {
	b := &Broker{
		p:        p,
		log:      opts.Logger,
		now:      opts.Now,
		prefix:   p.Broker.Prefix,
		replicas: max(p.Broker.Replicas, 1),
		cfgPath:  "broker",
		topics:   make(map[string]*topic, len(p.Topics)),
		lagCache: make(map[lagKey]entryTimes),
		progress: make(map[consumerPart]progressState),
		readers:  make(map[*Reader]struct{}),
		stop:     make(chan struct{}),
		ncDone:   make(chan struct{}),
		idSeeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.prefix == "" {
		b.prefix = pipelines.DefaultPrefix
	}
	b.subject = strings.ToLower(b.prefix)
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, b)
	if err != nil {
		return nil, err
	}
	b.metrics = m
	return b, nil
}

// connOptions are common to the embedded and the external connection.
func (b *Broker) connOptions() []nats.Option {
	return []nats.Option{
		nats.Name("lambdaflow " + b.p.Name),
		// Appends must fail fast while disconnected (ingest answers 503);
		// buffering them would deliver them after their callers gave up.
		nats.ReconnectBufSize(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(b.ncDone) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("broker: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// Not ConnectedUrlRedacted: it keeps a token (the user part
			// of the URL) and the user name.
			b.log.Info("broker: reconnected", "url", RedactURLs(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Warn("broker: async error", "err", err)
		}),
	}
}

func (b *Broker) startEmbedded() error {
	bp := b.p.Broker
	so := &server.Options{
		ServerName: "lambdaflow",
		JetStream:  true,
		StoreDir:   filepath.Join(b.p.DataDir, "broker"),
		SyncAlways: bp.Sync == "" || bp.Sync == "always",
		NoSigs:     true,
		DontListen: bp.Listen == "",
		// Entries of many events exceed the 1 MiB default.
		MaxPayload: 8 << 20,
		// A topic's max_bytes is a retention limit, as in Kafka, not a
		// reservation. JetStream counts every stream's MaxBytes against
		// its store limit, which it sizes from the free disk, so without
		// this a pipeline whose limits add up to more than the free disk
		// could not create its topics. A disk that really fills still
		// fails appends, which ingest answers with 503.
		JetStreamMaxStore: 1 << 50,
	}
	if bp.Listen != "" {
		host, port, err := splitHostPort(bp.Listen)
		if err != nil {
			return fmt.Errorf("broker: listen %q: %w", bp.Listen, err)
		}
		so.Host, so.Port = host, port
	}
	if err := clusterOptions(so, bp.Cluster); err != nil {
		return err
	}
	if err := os.MkdirAll(so.StoreDir, 0o755); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.disk = newDiskWatch(so.StoreDir, b.log.Error, b.metrics.diskFull, b.metrics.diskFulls)
	ns, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("broker: embedded nats-server: %w", err)
	}
	ns.SetLoggerV2(serverLogger{b.log, b.disk}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		stopServer(ns, b.log)
		return fmt.Errorf("broker: embedded nats-server under %s did not start within 30s", so.StoreDir)
	}
	b.ns = ns
	opts := append(b.connOptions(), nats.InProcessServer(ns))
	b.nc, err = nats.Connect("", opts...)
	if err != nil {
		stopServer(b.ns, b.log)
		return fmt.Errorf("broker: connect to embedded nats-server: %w", err)
	}
	return nil
}

// clusterOptions makes the embedded server a node of the cluster c
// describes, if it describes one: routes to the other nodes, and a server
// name of its own (JetStream tells its peers apart by name).
func clusterOptions(so *server.Options, c pipelines.Cluster) error {
	if c.Listen == "" {
		return nil
	}
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("broker: cluster.listen %q: %w", c.Listen, err)
	}
	so.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
	setLameDuck(so)
	if so.DontListen {
		// nats-server starts routing only once its client listener is up:
		// without broker.listen, one on a loopback port of its choosing.
		so.DontListen = false
		so.Host, so.Port = "127.0.0.1", server.RANDOM_PORT
	}
	so.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	so.ServerName = c.Node
	if so.ServerName == "" {
		if so.ServerName, err = os.Hostname(); err != nil {
			return fmt.Errorf("broker: cluster.node is empty and the host name is unknown: %w", err)
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	return host, p, err
}

// waitClustered waits until JetStream answers through the embedded node of
// a cluster: until enough nodes are up to elect a meta leader. A node
// started before its peers waits for them, as it waits for an external
// cluster, instead of failing to create its topics.
func (b *Broker) waitClustered(ctx context.Context) error {
	if b.p.Broker.Cluster.Listen == "" {
		return nil
	}
	start := time.Now()
	next := start.Add(10 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("broker: the cluster did not form: %w", ctx.Err())
		}
		if time.Now().After(next) {
			b.log.Warn("broker: waiting for the cluster to form", "routes", strings.Join(b.p.Broker.Cluster.Routes, ","),
				"waited", time.Since(start).Round(time.Second), "err", err)
			next = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (b *Broker) connectExternal(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bp := b.p.Broker
	opts := b.connOptions()
	if b.readOnly {
		opts = append(opts, nats.PingInterval(remotePing), nats.MaxPingsOutstanding(remotePings))
	}
	opts = append(opts,
		// Also after Open, when the cluster was down at the start.
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.log.Info("broker: connected", "url", RedactURLs(nc.ConnectedUrl()))
		}),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := 100 * time.Millisecond << min(attempts, 6) // up to 6.4 s
			return d/2 + rand.N(d/2)
		}),
	)
	if bp.Creds != "" {
		opts = append(opts, nats.UserCredentials(bp.Creds))
	}
	if bp.User != "" {
		opts = append(opts, nats.UserInfo(bp.User, bp.Password))
	}
	if bp.Token != "" {
		opts = append(opts, nats.Token(bp.Token))
	}
	if bp.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(bp.TLS.CA))
	}
	if bp.TLS.Cert != "" || bp.TLS.Key != "" {
		opts = append(opts, nats.ClientCert(bp.TLS.Cert, bp.TLS.Key))
	}
	urls := strings.Join(strings.Fields(strings.ReplaceAll(bp.URL, ",", " ")), ",")
	// One pass over the servers first: a server that refuses the
	// credentials or the TLS settings is a configuration error, which
	// RetryOnFailedConnect would hide behind a reconnect loop with Open
	// reporting success.
	nc, err := nats.Connect(urls, opts...)
	if err != nil && !refused(err) {
		// Start even when the cluster is down: Ready reports it and
		// appends fail with ErrUnavailable until it is back.
		nc, err = nats.Connect(urls, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return fmt.Errorf("broker: connect to %s: %w", RedactURLs(urls), explain(err, b.cfgPath))
	}
	b.nc = nc
	return nil
}

// refused reports whether a failed connect was refused by a server that
// was reached: wrong credentials or TLS settings, or a credentials file
// that cannot be read. Retrying cannot fix those.
func refused(err error) bool {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return false
	}
	return authFailed(err) || tlsFailed(err) ||
		errors.Is(err, nats.ErrSecureConnRequired) ||
		errors.Is(err, nats.ErrSecureConnWanted) ||
		errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, fs.ErrPermission)
}

func authFailed(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) ||
		errors.Is(err, nats.ErrAccountAuthExpired)
}

// tlsFailed reports a failed TLS handshake, including a server that hangs
// up right after it (or sends an alert) because it wants a client
// certificate.
func tlsFailed(err error) bool {
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" {
		return true // a TLS alert from the server
	}
	return errors.Is(err, nats.ErrTLS)
}

// explain prefixes a refused connect's error with what to check in the
// configuration, whose keys are under path ("broker", or a source's).
func explain(err error, path string) error {
	switch {
	case authFailed(err):
		return fmt.Errorf("authorization failed (check %[1]s.user and %[1]s.password, %[1]s.token or %[1]s.creds): %[2]w", keysOf(path, "auth"), err)
	case tlsFailed(err):
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return fmt.Errorf("the server's TLS certificate is not trusted (check %s.tls.ca): %w", path, err)
		}
		return fmt.Errorf("TLS handshake failed (if the server requires a client certificate, check %[1]s.tls.cert and %[1]s.tls.key): %[2]w", path, err)
	}
	return err
}

// keysOf is where credentials are under path: broker.user, but a
// source's auth.user.
func keysOf(path, sub string) string {
	if path == "broker" {
		return path
	}
	return path + "." + sub
}

// RedactURLs hides the credentials in URLs (user:password or a token) for
// messages.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if s := strings.Index(u, "://"); s >= 0 && s < at {
				parts[i] = u[:s+3] + "***" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// Close stops open Readers, writes the end-offset markers of the
// partitions this Broker appended to and the read reports not yet written
// (Progress), drains the connection and shuts the
// embedded server down. It is safe to call more than once.
func (b *Broker) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	readers := make([]*Reader, 0, len(b.readers))
	for r := range b.readers {
		readers = append(readers, r)
	}
	b.mu.Unlock()
	// Side by side: closing a Reader deletes its consumer, a request that
	// takes up to readerDeleteWait when JetStream does not answer.
	var closing sync.WaitGroup
	for _, r := range readers {
		closing.Go(func() { r.Close() })
	}
	closing.Wait()
	close(b.stop)
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	b.writeMarkers(ctx)
	b.writeProgress(ctx)
	cancel()
	b.metrics.unregister()
	b.shutdown()
	return nil
}

func (b *Broker) shutdown() {
	if b.nc != nil {
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		}
		select {
		case <-b.ncDone:
		case <-time.After(35 * time.Second): // past nats' own drain timeout
			b.nc.Close()
		}
	}
	if b.ns != nil {
		stopServer(b.ns, b.log)
	}
}

// apiIdleWait bounds how long stopServer waits for the JetStream API
// requests in flight: longer than any one takes on a loaded machine.
const apiIdleWait = 10 * time.Second

// stopServer shuts an in-process nats-server down so that none of its stores
// outlives it. nats-server's Shutdown leaves a store running (and its
// goroutines, and its files open) in two races of its own:
//
//   - A stream that a JetStream API request is creating while Shutdown
//     stops the account's streams is registered after, and never stopped.
//     So the requests in flight end first: those of the Broker's own
//     connection, which is closed by now, were all read by the server
//     (its drain ended with a round trip).
//   - On a cluster node, Shutdown drops the system account before it stops
//     the meta layer, which goes on creating the raft groups of streams
//     and consumers (a node that just started recreates all of them); the
//     log of each one created in between fails to start and is never
//     stopped. A lame-duck shutdown stops JetStream and its raft groups
//     first, with the system account still there, after handing the
//     node's leaderships over (as Shutdown does), and then shuts down;
//     setLameDuck bounds how long it waits for clients.
func stopServer(ns *server.Server, log *slog.Logger) {
	if err := waitAPIIdle(ns, apiIdleWait); err != nil {
		log.Warn("broker: shutting the embedded nats-server down with JetStream requests in flight", "err", err)
	}
	if ns.JetStreamIsClustered() {
		ns.LameDuckShutdown() // a no-op without a client listener, which cluster nodes always have
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// setLameDuck makes a lame-duck shutdown (stopServer's, of a cluster node)
// quick: it closes the clients still connected within a second, not
// nats-server's default of two minutes after a grace period of ten
// seconds.
func setLameDuck(so *server.Options) {
	so.LameDuckGracePeriod = 100 * time.Millisecond
	so.LameDuckDuration = time.Second
}

// waitAPIIdle waits until ns serves no JetStream API request, for at most
// d.
func waitAPIIdle(ns *server.Server, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		info, err := ns.Jsz(nil)
		if err != nil || info.API.Inflight == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d JetStream API requests still in flight after %s", info.API.Inflight, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Ready returns nil when JetStream answers within ctx and 3 s, otherwise an
// error wrapping ErrUnavailable that names what is down (the connection, or
// JetStream behind it).
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	// A request sent just before the connection broke is never answered;
	// a health check must not wait for the caller's whole deadline.
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if b.disk != nil && b.disk.full.Load() {
		return b.disk.fullErr()
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: nats connection %s", ErrUnavailable, strings.ToLower(st.String()))
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: jetstream: %w", ErrUnavailable, err)
	}
	return nil
}

// keyValue returns the key-value bucket <prefix>_<bucket>, creating it (file
// storage, the configured replicas, one revision per key) or updating it;
// on a cluster it waits, within ctx, until the bucket can be placed.
// Other layers keep their checkpoints there.
func (b *Broker) keyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return b.kv(ctx, bucket, 0)
}

// kv is keyValue with keys that expire ttl after their last write (0: never).
func (b *Broker) kv(ctx context.Context, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	if b.readOnly {
		kv, err := b.js.KeyValue(ctx, b.prefix+"_"+bucket)
		if err != nil {
			return nil, fmt.Errorf("broker: key-value bucket %s_%s: %w", b.prefix, bucket, unavailable(err))
		}
		return kv, nil
	}
	var kv jetstream.KeyValue
	err := b.whileForming(ctx, "bucket "+b.prefix+"_"+bucket, func() (err error) {
		kv, err = b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   b.prefix + "_" + bucket,
			Storage:  jetstream.FileStorage,
			Replicas: b.replicas,
			History:  1,
			TTL:      ttl,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("broker: key-value bucket %s_%s: %w", b.prefix, bucket, unavailable(err))
	}
	return kv, nil
}

// ObjectStore returns the object store <prefix>_<bucket>, creating it (file
// storage, the configured replicas) or updating it.
func (b *Broker) ObjectStore(ctx context.Context, bucket string) (*ObjectStore, error) {
	var os jetstream.ObjectStore
	err := b.whileForming(ctx, "object store "+b.prefix+"_"+bucket, func() (err error) {
		os, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:   b.prefix + "_" + bucket,
			Storage:  jetstream.FileStorage,
			Replicas: b.replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("broker: object store %s_%s: %w", b.prefix, bucket, unavailable(err))
	}
	return &ObjectStore{os: os, bucket: b.prefix + "_" + bucket}, nil
}

// serverLogger passes the embedded server's messages to the broker's log,
// and its errors to the disk watch, which learns of a full disk from them.
type serverLogger struct {
	log  *slog.Logger
	disk *diskWatch
}

// Noticef goes to debug: the embedded server's start-up banner and routine
// notices would drown the pipeline's own log at info.
func (l serverLogger) Noticef(format string, v ...any) {
	l.log.Debug("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Warnf(format string, v ...any) {
	l.log.Warn("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Fatalf(format string, v ...any) {
	l.log.Error("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error("nats-server: " + msg)
	if l.disk != nil {
		l.disk.serverError(msg)
	}
}
func (l serverLogger) Debugf(format string, v ...any) {
	l.log.Debug("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Tracef(string, ...any) {}
