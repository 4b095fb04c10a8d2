package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/ingest"
	"github.com/lambdaflow/lambdaflow/internal/access"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Log is what the listener needs of the log (a *broker.Broker has it).
type Log interface {
	// FetchFrom reads events of a partition from an offset on; see
	// broker.Broker.FetchFrom.
	FetchFrom(ctx context.Context, topic string, part int, offset int64, cur *broker.Cursor, maxEvents, maxBytes int) ([]broker.Entry, broker.Bounds, error)
	// Bounds returns a partition's first held and next offset.
	Bounds(ctx context.Context, topic string, part int) (broker.Bounds, error)
	// OffsetAt returns the first offset stored at or after t, and when.
	OffsetAt(ctx context.Context, topic string, part int, t time.Time) (int64, time.Time, error)
	// Appended signals the next append to any of some partitions.
	Appended(parts ...broker.Part) (*broker.Watch, error)
	// Commit and Committed keep consumer positions.
	Commit(ctx context.Context, consumer, topic string, part int, offset, eventTime int64) error
	Committed(ctx context.Context, consumer, topic string, part int) (int64, bool, error)
	// Lag is every consumer's position and lag.
	Lag(ctx context.Context) ([]api.Lag, error)
	// States opens a compare-and-set bucket for group state.
	States(ctx context.Context, bucket string) (*broker.States, error)
}

// Producer appends validated records (an *ingest.Ingest).
type Producer interface {
	PublishRecords(ctx context.Context, topic string, part int, recs []ingest.Record) ([]ingest.Result, error)
}

// Options are the dependencies a Server gets from its owner.
type Options struct {
	// Logger gets the listener's messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock of group sessions; nil means time.Now.
	Now func() time.Time
	// Registerer gets the listener's metrics; nil keeps them private.
	Registerer prometheus.Registerer
	// Listener, when set, is used instead of listening on kafka.listen
	// (tests pass one bound to port 0).
	Listener net.Listener
}

// Server is the Kafka wire-protocol listener of one pipeline. Create it
// with New, run it with Run. Safe for concurrent use.
type Server struct {
	p        *pipelines.Pipeline
	log      Log
	producer Producer
	logger   *slog.Logger
	now      func() time.Time
	metrics  *metrics
	tokens   *access.Tokens
	tls      *tls.Config
	ln       net.Listener
	topics   map[string]*pipelines.Topic
	groups   *coordinator
	pids     *producers

	nodeID     int32
	host       string
	port       int32
	maxRequest int
	maxFetch   int
	maxConns   int64
	conns      atomic.Int64
	connsMu    sync.Mutex
	open       map[*conn]struct{}
	closing    atomic.Bool
	connsWG    sync.WaitGroup
}

// New builds the listener of pipeline p and binds its address (so that
// Addr is known before Run). p.Kafka.Listen must not be empty unless
// opts.Listener is given.
func New(p *pipelines.Pipeline, log Log, producer Producer, opts Options) (*Server, error) {
	if p == nil || log == nil || producer == nil {
		return nil, errors.New("kafka: New needs a pipeline, a log and a producer")
	}
	s := &Server{
		p:          p,
		log:        log,
		producer:   producer,
		logger:     opts.Logger,
		now:        opts.Now,
		topics:     make(map[string]*pipelines.Topic, len(p.Topics)),
		nodeID:     int32(p.Kafka.NodeID),
		maxRequest: int(p.Kafka.MaxRequestBytes),
		maxFetch:   int(p.Kafka.MaxFetchBytes),
		maxConns:   int64(p.Kafka.MaxConnections),
		open:       make(map[*conn]struct{}),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxRequest <= 0 {
		s.maxRequest = 16 << 20
	}
	if s.maxFetch <= 0 {
		s.maxFetch = 8 << 20
	}
	if s.maxConns <= 0 {
		s.maxConns = 1024
	}
	for i := range p.Topics {
		s.topics[p.Topics[i].Name] = &p.Topics[i]
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.tokens = access.New(p)
	if p.Kafka.TLS.Cert != "" {
		if s.tls, err = serverTLS(p.Kafka.TLS); err != nil {
			return nil, err
		}
	}
	s.groups = newCoordinator(s)
	s.pids = newProducers(s)

	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", p.Kafka.Listen); err != nil {
			return nil, fmt.Errorf("kafka.listen %s: %w", p.Kafka.Listen, err)
		}
	}
	s.ln = ln
	adv := p.Kafka.Advertised
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("kafka.advertised %q: %w", adv, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("kafka.advertised %q: port: %w", adv, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		// A wildcard is no address to connect to.
		if host, err = os.Hostname(); err != nil {
			host = "127.0.0.1"
		}
	}
	s.host, s.port = host, int32(n)
	return s, nil
}

func serverTLS(c pipelines.ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.client_ca %s: no PEM certificate in it", c.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Addr returns the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Advertised returns the host:port clients are told to connect to.
func (s *Server) Advertised() string {
	return net.JoinHostPort(s.host, strconv.Itoa(int(s.port)))
}

// Run accepts connections until ctx is done, then closes the listener and
// every connection and waits for their goroutines. A request in progress
// when ctx ends gets no answer; an acknowledged produce stays durable
// (its Append is not cancelled half-way by the log).
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.closing.Store(true)
		s.ln.Close()
		s.connsMu.Lock()
		for c := range s.open {
			c.nc.Close()
		}
		s.connsMu.Unlock()
	})
	defer stop()
	s.logger.Info("kafka listener ready", "addr", s.ln.Addr().String(), "advertised", s.Advertised(), "tls", s.tls != nil)
	var err error
	for {
		nc, aerr := s.ln.Accept()
		if aerr != nil {
			if s.closing.Load() || ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				continue
			}
			err = fmt.Errorf("kafka: accept: %w", aerr)
			break
		}
		if s.conns.Add(1) > s.maxConns {
			s.conns.Add(-1)
			s.metrics.refused.Inc()
			s.logger.Warn("kafka: connection refused: kafka.max_connections reached", "remote", nc.RemoteAddr().String(), "max", s.maxConns)
			nc.Close()
			continue
		}
		if s.tls != nil {
			nc = tls.Server(nc, s.tls)
		}
		c := newConn(s, nc)
		s.connsMu.Lock()
		if s.closing.Load() {
			s.connsMu.Unlock()
			nc.Close()
			s.conns.Add(-1)
			continue
		}
		s.open[c] = struct{}{}
		s.connsMu.Unlock()
		s.connsWG.Go(func() {
			defer func() {
				s.connsMu.Lock()
				delete(s.open, c)
				s.connsMu.Unlock()
				s.conns.Add(-1)
			}()
			c.serve(ctx)
		})
	}
	s.ln.Close()
	s.connsMu.Lock()
	for c := range s.open {
		c.nc.Close()
	}
	s.connsMu.Unlock()
	s.connsWG.Wait()
	s.logger.Info("kafka listener stopped")
	return err
}
