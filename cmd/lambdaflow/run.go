package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/sinks/all"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/lambdaflow/lambdaflow/batch"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/console"
	"github.com/lambdaflow/lambdaflow/groups"
	"github.com/lambdaflow/lambdaflow/ingest"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/kafka"
	"github.com/lambdaflow/lambdaflow/mirror"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/serving"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/speed"
	"github.com/lambdaflow/lambdaflow/sqlquery"
)

// The roles a process can run; `run` without --role runs them all.
var allRoles = []string{"ingest", "speed", "batch", "sinks", "serve"}

// The serving store takes both layers' rows as they make them: the layers
// meet here, in the wiring, and never import serving.
var (
	_ speed.Store = (*serving.Store)(nil)
	_ batch.Store = (*serving.Store)(nil)
)

// module is one role's long-running part. Run returns when ctx is done, after
// a soft stop (drain, checkpoint), or with the error that stopped it.
type module interface {
	Run(ctx context.Context) error
}

func runCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("run", "[-c FILE] [--role ROLES]", std)
	file := fs.String("c", envOr(env, "LAMBDAFLOW_CONFIG", "lambdaflow.yaml"), "pipeline file (env LAMBDAFLOW_CONFIG)")
	roles := fs.String("role", "all", "comma-separated roles to run: "+strings.Join(allRoles, ", ")+", or all")
	listen := fs.String("listen", "", "override http.listen")
	logFormat := fs.String("log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(std.err, *logFormat, *logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	selected, err := parseRoles(*roles)
	if err != nil {
		return err
	}
	p, err := pipelines.Load(*file, env, all.Types())
	if err != nil {
		var errs pipelines.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(std.err, e)
			}
			return &exitError{code: 1, err: fmt.Errorf("%s: %d errors; nothing started", *file, len(errs))}
		}
		return err
	}
	if *listen != "" {
		p.HTTP.Listen = *listen
	}
	return serve(ctx, p, selected, logger, std)
}

func parseRoles(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "all" {
			for _, a := range allRoles {
				out[a] = true
			}
			continue
		}
		known := false
		for _, a := range allRoles {
			known = known || a == r
		}
		if !known {
			return nil, &exitError{code: 2, err: fmt.Errorf("unknown role %q (roles: %s, all)", r, strings.Join(allRoles, ", "))}
		}
		out[r] = true
	}
	return out, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want auto, text or json", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// serve runs the selected roles of pipeline p until ctx is done, then stops
// in order: the HTTP server first (in-flight ingest requests get their
// answers), then the modules (drain, flush, checkpoint), then the log.
func serve(ctx context.Context, p *pipelines.Pipeline, roles map[string]bool, logger *slog.Logger, std stdio) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every metric of the pipeline carries pipeline and component labels;
	// the packages add only their own (topic, partition, view, sink…).
	preg := func(component string) prometheus.Registerer {
		return prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": p.Name, "component": component}, reg)
	}

	ln, err := net.Listen("tcp", p.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", p.HTTP.Listen, err)
	}
	defer ln.Close()

	// What is opened is closed in reverse order on the way out, except
	// after a stop that ran out of shutdown_timeout: closing a database
	// pool waits for the connections a stuck part still holds.
	var closers []func() error
	hardStop := false
	defer func() {
		for i := len(closers) - 1; i >= 0 && !hardStop; i-- {
			closers[i]()
		}
	}()

	b, err := broker.Open(ctx, p, broker.Options{Logger: logger.With("component", "broker"), Registerer: preg("log")})
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	closers = append(closers, b.Close)
	if err := b.EnsureTopics(ctx); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}

	// Each part declares its routes (with their access) and readiness; the
	// wiring only collects them.
	var routes []httpapi.Route
	auth := httpapi.NewAuth(p)
	health := console.NewHealth()
	health.Add(httpapi.Check{Name: "log", Ready: b.Ready})
	stats := console.NewStats(p.Name, b, nil)
	routes = append(routes, health.Routes()...)
	routes = append(routes, console.MetricsRoutes(reg, logger)...)
	routes = append(routes, stats.Routes()...)
	routes = append(routes, console.ClusterRoutes(b)...)

	// Every process is a node of the cluster on the log, so that GET
	// /v1/cluster lists it; the consumers it runs share their partitions
	// with the other processes running them.
	node, err := b.Join(ctx, broker.NodeOptions{Name: nodeName(p, ln.Addr()), Roles: strings.Split(roleList(roles), ","), Addr: advertised(ln.Addr())})
	if err != nil {
		return fmt.Errorf("join the cluster: %w", err)
	}
	// Closed after the modules stopped (it gives their partitions back),
	// before the log.
	defer node.Close()

	var modules []namedModule
	var duckSinks []sqlquery.SinkDB // DuckDB sinks run here, for SQL
	var kafkaAddr string
	var kafkaGroups groups.Others
	if roles["ingest"] {
		in, err := ingest.New(p, ingest.BrokerLog(b), ingest.Options{Logger: logger.With("component", "ingest"), Registerer: preg("ingest")})
		if err != nil {
			return err
		}
		routes = append(routes, in.Routes()...)
		health.Add(in.Checks()...)
		stats.Add(in)
		modules = append(modules, namedModule{"ingest", in})
		modules = append(modules, namedModule{"ingest over nats", moduleFunc(func(ctx context.Context) error { return in.ServeNATS(ctx, b) })})
		if p.Kafka.Listen != "" {
			ks, err := kafka.New(p, b, in, kafka.Options{Logger: logger.With("component", "kafka"), Registerer: preg("kafka")})
			if err != nil {
				return err
			}
			kafkaAddr = ks.Advertised()
			kafkaGroups = ks
			modules = append(modules, namedModule{"kafka", ks})
		}
		// Links pull other sites' topics in through the same log: they are
		// a way in, like HTTP and Kafka.
		if hasSources(p) {
			mr, err := mirror.New(p, b, mirror.Options{Logger: logger.With("component", "mirror"), Registerer: preg("mirror"), Owner: node})
			if err != nil {
				return err
			}
			health.Add(mr.Checks()...)
			stats.Add(mr)
			modules = append(modules, namedModule{"mirror", mr})
		}
		// Consumer groups over HTTP are served where events come in: a
		// load balancer in front of ingest processes serves them too.
		gs, err := groups.New(p, b, groups.Options{Logger: logger.With("component", "groups"), Others: kafkaGroups, Registerer: preg("groups")})
		if err != nil {
			return err
		}
		routes = append(routes, gs.Routes()...)
	}
	if roles["sinks"] {
		var runners []*sinks.Runner
		// One wrapped registerer for every sink: the runners share their
		// metric families and label them by sink.
		sinkReg := preg("sinks")
		for i := range p.Sinks {
			spec := &p.Sinks[i]
			sinkLog := logger.With("component", "sink")
			target, err := all.Open(ctx, p, spec, sinkLog)
			if err != nil {
				return fmt.Errorf("sink %q: %w", spec.Name, err)
			}
			closers = append(closers, target.Close)
			if d, ok := target.(interface{ DB() *sql.DB }); ok && spec.Type == "duckdb" {
				duckSinks = append(duckSinks, sqlquery.SinkDB{Name: spec.Name, DB: d.DB()})
			}
			// A sink's last flush gets half the stop's time, so that a
			// database that does not answer leaves time for the rest.
			r, err := sinks.NewRunner(p, spec, target, b, sinks.Options{Logger: sinkLog, Registerer: sinkReg, Owner: node, StopTimeout: p.ShutdownTimeout.D() / 2})
			if err != nil {
				return err
			}
			health.Add(r.Checks()...)
			stats.Add(r)
			runners = append(runners, r)
			modules = append(modules, namedModule{"sink " + spec.Name, r})
		}
		routes = append(routes, sinks.Routes(runners)...)
	}
	store := serving.NewStore(p)
	if roles["batch"] || roles["serve"] {
		// A serving process shows the batch results the processes running
		// the batch role publish.
		opts := batch.Options{Logger: logger.With("component", "batch"), Registerer: preg("batch"), Serve: roles["serve"]}
		if roles["batch"] {
			opts.Owner = node
		}
		bt, err := batch.New(p, b, store, opts)
		if err != nil {
			return err
		}
		if roles["batch"] {
			routes = append(routes, bt.Routes()...)
			stats.Add(bt)
		}
		modules = append(modules, namedModule{"batch", bt})
	}
	if roles["speed"] || roles["serve"] {
		// Computing views (speed) and showing them whole (serve) are the
		// same layer: a serving process replicates the partitions it does
		// not compute.
		opts := speed.Options{Logger: logger.With("component", "speed"), Registerer: preg("speed"), Serve: roles["serve"]}
		if roles["speed"] {
			opts.Owner = speed.BrokerOwner(node)
		}
		sp, err := speed.New(p, speed.BrokerLog(b), store, opts)
		if err != nil {
			return err
		}
		if roles["speed"] {
			stats.Add(sp)
		}
		modules = append(modules, namedModule{"speed", sp})
	}
	if roles["serve"] {
		routes = append(routes, console.NewAPI(p, b).Routes()...)
		routes = append(routes, serving.NewHandler(p, store, serving.NewMetrics(preg("serving"), store)).Routes()...)
		routes = append(routes, console.UIRoutes()...)
		lakeFiles := func(_ context.Context, topic string, span sqlquery.Span) ([]string, func(), error) {
			files, err := batch.LakeFiles(p, topic, span.From, span.To)
			return files, nil, err
		}
		if p.Lake.URL != "" {
			// DuckDB opens files by path: a lake on object storage is
			// read from local copies.
			copies, err := batch.OpenLakeCopies(p, filepath.Join(p.DataDir, "sql-lake"), int64(p.SQL.LakeCache), logger.With("component", "sql"), preg("sql"))
			if err != nil {
				return err
			}
			defer copies.Close()
			lakeFiles = func(ctx context.Context, topic string, span sqlquery.Span) ([]string, func(), error) {
				return copies.Files(ctx, topic, span.From, span.To)
			}
		}
		engine := sqlquery.New(p, sqlquery.Options{
			Lake:   lakeFiles,
			Views:  storeViews{store},
			Sinks:  duckSinks,
			Logger: logger.With("component", "sql"),
		})
		sqlAPI, err := sqlquery.NewHandler(engine, auth, preg("sql"))
		if err != nil {
			return err
		}
		routes = append(routes, sqlAPI.Routes()...)
	}

	handler := httpapi.Handler(auth, routes)
	if p.HTTP.AccessLog {
		handler = httpapi.AccessLog(handler, logger.With("component", "http"), time.Now)
	}
	srv := httpapi.NewServer(handler, httpLimits(p.HTTP), preg("http"), logger.With("component", "http"))
	modCtx, stopModules := context.WithCancel(context.WithoutCancel(ctx))
	defer stopModules()
	g, gctx := errgroup.WithContext(modCtx)
	running := newRunning()
	for _, m := range modules {
		running.start(m.name)
		g.Go(func() error {
			defer running.done(m.name)
			if err := m.m.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			return nil
		})
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(ln) }()

	url := "http://" + ln.Addr().String()
	logger.Info("lambdaflow running", "pipeline", p.Name, "roles", roleList(roles), "http", url, "data_dir", p.DataDir)
	fmt.Fprintf(std.err, "\nLambdaflow %q is running.\n  ingest   POST %s/v1/topics/{topic}/events\n  query    GET  %s/v1/views/{view}\n  console  %s/\n  metrics  %s/metrics\n",
		p.Name, url, url, url, url)
	if kafkaAddr != "" {
		fmt.Fprintf(std.err, "  kafka    %s (bootstrap.servers)\n", kafkaAddr)
	}
	fmt.Fprintf(std.err, "Try:\n  curl -s -XPOST %s/v1/topics/%s/events -d '%s'\n\n", url, firstTopic(p), exampleEvent(p))

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("stopping: draining requests, flushing and checkpointing")
	case err := <-httpErr:
		runErr = fmt.Errorf("http: %w", err)
	case <-gctx.Done():
		// A module failed; stop the rest.
	}
	// The whole stop is bounded by shutdown_timeout, whatever a part's
	// database or disk does: first the requests in flight get their
	// answers, then the modules drain, flush and checkpoint.
	shutCtx, cancel := context.WithTimeout(context.Background(), p.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Warn("http: requests still in flight at shutdown_timeout; closing their connections", "err", err)
		srv.Close()
	}
	stopModules()
	waited := make(chan error, 1)
	// Ends when the modules do; after a hard stop the process exits first.
	go func() { waited <- g.Wait() }()
	select {
	case err := <-waited:
		if err != nil && runErr == nil {
			runErr = err
		}
	case <-shutCtx.Done():
		hardStop = true
		still := running.names()
		logger.Error("stop ran out of shutdown_timeout; exiting without waiting", "shutdown_timeout", p.ShutdownTimeout.String(), "still_stopping", still)
		return &exitError{code: 1, err: fmt.Errorf("the stop took longer than shutdown_timeout (%s); exited while %s still stopping. Nothing acknowledged is lost: each part resumes from its last checkpoint and committed offsets",
			p.ShutdownTimeout, strings.Join(still, ", "))}
	}
	logger.Info("stopped")
	return runErr
}

// storeViews gives SQL the serving store's merged view rows.
type storeViews struct{ s *serving.Store }

func (v storeViews) Rows(view string) ([]viewrow.Row, bool) {
	rows, _, _, ok := v.s.Query(view, serving.Filter{})
	return rows, ok
}

// nodeName names this process in the cluster: broker.cluster.node, or the
// host name, then the HTTP listen address's IP when it is a particular one
// (not every interface, not the loopback) and the port, so that processes
// on one machine differ, also when they share a host name (containers or
// network namespaces of one host, each listening on its own address). A
// process restarted with the same name takes its predecessor's partitions
// at once, so no two live processes may share one.
func nodeName(p *pipelines.Pipeline, addr net.Addr) string {
	name := p.Broker.Cluster.Node
	if name == "" {
		name, _ = os.Hostname()
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		if !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() && ta.IP != nil {
			name += "-" + strings.NewReplacer(".", "-", ":", "-").Replace(ta.IP.String())
		}
		name += "-" + strconv.Itoa(ta.Port)
	}
	return name
}

// advertised is the HTTP address to show in GET /v1/cluster: the listen
// address, with the host name when it listens on every interface.
func advertised(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if ta.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, strconv.Itoa(ta.Port))
		}
	}
	return ta.String()
}

// runningModules tracks which modules have not returned yet, for the
// message of a stop that ran out of time.
type runningModules struct {
	mu  sync.Mutex
	set map[string]bool
}

func newRunning() *runningModules { return &runningModules{set: map[string]bool{}} }

func (r *runningModules) start(name string) {
	r.mu.Lock()
	r.set[name] = true
	r.mu.Unlock()
}

func (r *runningModules) done(name string) {
	r.mu.Lock()
	delete(r.set, name)
	r.mu.Unlock()
}

func (r *runningModules) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.set))
	for n := range r.set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// httpLimits are the HTTP server's limits from the pipeline file.
func httpLimits(h pipelines.HTTP) httpapi.Limits {
	return httpapi.Limits{
		ReadHeaderTimeout: h.ReadHeaderTimeout.D(),
		ReadTimeout:       h.ReadTimeout.D(),
		WriteTimeout:      h.WriteTimeout.D(),
		IdleTimeout:       h.IdleTimeout.D(),
		MaxConnections:    h.MaxConnections,
	}
}

// moduleFunc makes a function a module.
type moduleFunc func(ctx context.Context) error

func (f moduleFunc) Run(ctx context.Context) error { return f(ctx) }

type namedModule struct {
	name string
	m    module
}

func roleList(roles map[string]bool) string {
	var out []string
	for _, r := range allRoles {
		if roles[r] {
			out = append(out, r)
		}
	}
	return strings.Join(out, ",")
}

// hasSources reports whether a topic of p pulls other sites' events in.
func hasSources(p *pipelines.Pipeline) bool {
	for _, t := range p.Topics {
		if len(t.Sources) > 0 {
			return true
		}
	}
	return false
}

func firstTopic(p *pipelines.Pipeline) string {
	if len(p.Topics) == 0 {
		return "TOPIC"
	}
	return p.Topics[0].Name
}

// exampleEvent builds a valid event for the first topic, for the banner.
func exampleEvent(p *pipelines.Pipeline) string {
	if len(p.Topics) == 0 {
		return "{}"
	}
	t := p.Topics[0]
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range t.Schema {
		if pipelines.IsSiteField(f) {
			continue // set by ingest
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", f.Name)
		switch f.Type {
		case event.TypeString:
			fmt.Fprintf(&b, "%q", "a")
		case event.TypeLong, event.TypeInt:
			b.WriteString("1")
		case event.TypeDouble:
			b.WriteString("0.5")
		case event.TypeBool:
			b.WriteString("true")
		case event.TypeTimestamp:
			fmt.Fprintf(&b, "%q", time.Now().UTC().Format(time.RFC3339))
		}
	}
	b.WriteByte('}')
	return b.String()
}
