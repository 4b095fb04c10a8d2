// Package cassandra is the sink target for Apache Cassandra (and other
// CQL-speaking stores such as ScyllaDB), written with gocql on protocol 4.
//
// It owns the mapping of a sinks.Table onto a CQL table — keyspace and table
// creation, columns added for new fields, prepared upserts in unlogged
// batches per partition key — and the sorting of Cassandra's errors into the
// three kinds the runner acts on (transient, per row, permanent). It does not
// retry, back off, batch by time or dead-letter: the sink runner wraps it for
// that.
//
// A topic lands in ks."topic" with its fields plus "_id", PRIMARY KEY ("_id").
// A view lands in ks."view" with window_start, window_end, the group-by
// fields and the aggregates, PRIMARY KEY ((group-by fields), window_start):
// one partition per group, one clustering row per window, so a dashboard
// reads a group's time range with one partition scan. Cassandra's timestamp
// type holds milliseconds, so microseconds below a millisecond are dropped.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

var _ sinks.Target = (*Sink)(nil)

// Defaults for what the pipeline file does not set.
const (
	defaultConsistency = "local_quorum"
	defaultPort        = 9042
	// requestTimeout bounds one CQL request; a write that takes longer is
	// reported as transient and retried by the runner.
	requestTimeout = 10 * time.Second
	connectTimeout = 5 * time.Second
	// reconnectInterval is how often a node marked down is dialled again.
	// gocql's default (60 s) would keep a sink stalled for a minute after
	// a restart of a single-node cluster.
	reconnectInterval = 5 * time.Second
	// schemaAgreement bounds the wait for all nodes to see a new table.
	schemaAgreement = 60 * time.Second
)

// Sink writes rows to Cassandra. It is safe for concurrent use, though the
// runner calls it from one goroutine at a time.
type Sink struct {
	spec     *pipelines.Sink
	keyspace string
	cluster  *gocql.ClusterConfig
	log      *slog.Logger
	ttl      int // seconds; 0 writes without TTL

	// inFlight bounds concurrent statements of one Write. Past a few
	// dozen, more only queue at the coordinator: on a local single node
	// 16–32 wrote about twice as fast as 128.
	inFlight int
	// batchRows caps the rows of one single-partition batch.
	batchRows int

	mu      sync.Mutex
	session *gocql.Session
	policy  gocql.HostSelectionPolicy // the session's, to find a row's replica
	ksReady bool                      // keyspace created (or known to exist)
	closed  bool
}

// New checks spec and returns a Sink for it. It does not dial: the session is
// made on first use (Ping, Prepare or Write), so the sink can start while
// Cassandra is down and report it through Ping. ctx is not retained.
func New(ctx context.Context, spec *pipelines.Sink, logger *slog.Logger) (*Sink, error) {
	_ = ctx
	if spec == nil {
		return nil, fmt.Errorf("cassandra sink: nil spec: %w", sinks.ErrPermanent)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("sink", spec.Name, "target", "cassandra")
	cfg, err := sinks.ConfigOf[Config](spec)
	if err != nil {
		return nil, err
	}
	if len(cfg.Hosts) == 0 {
		return nil, fmt.Errorf("cassandra sink %q: no hosts: %w", spec.Name, sinks.ErrPermanent)
	}
	if cfg.Keyspace == "" {
		return nil, fmt.Errorf("cassandra sink %q: no keyspace: %w", spec.Name, sinks.ErrPermanent)
	}
	consistency := cfg.Consistency
	if consistency == "" {
		consistency = defaultConsistency
	}
	cons, err := gocql.ParseConsistencyWrapper(consistency)
	if err != nil {
		return nil, fmt.Errorf("cassandra sink %q: consistency %q: %v: %w", spec.Name, consistency, err, sinks.ErrPermanent)
	}
	ttl := cfg.TTL.D()
	if ttl < 0 || (ttl > 0 && ttl < time.Second) {
		return nil, fmt.Errorf("cassandra sink %q: ttl %v: must be 0 or at least 1s: %w", spec.Name, ttl, sinks.ErrPermanent)
	}

	c := gocql.NewCluster(cfg.Hosts...)
	// gocql's v5 framing is not Cassandra 5's; v4 is what both speak.
	c.ProtoVersion = 4
	c.Port = defaultPort
	c.Consistency = cons
	c.Timeout = requestTimeout
	c.WriteTimeout = requestTimeout
	c.ConnectTimeout = connectTimeout
	c.ReconnectInterval = reconnectInterval
	c.MaxWaitSchemaAgreement = schemaAgreement
	// The runner owns retries; gocql retrying too would multiply them.
	c.RetryPolicy = nil
	// The sink reads no schema metadata from the driver (it asks
	// system_schema itself), and the driver's handler of schema events
	// outlives Session.Close by up to MaxWaitSchemaAgreement.
	c.Events.DisableSchemaEvents = true
	c.Logger = slogAdapter{logger}

	return &Sink{
		spec:      spec,
		keyspace:  cfg.Keyspace,
		cluster:   c,
		log:       logger,
		ttl:       int(ttl / time.Second),
		inFlight:  32,
		batchRows: 100,
	}, nil
}

// conn returns the session, creating it on first use.
func (s *Sink) conn() (*gocql.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("cassandra sink %q: closed: %w", s.spec.Name, sinks.ErrPermanent)
	}
	if s.session != nil {
		return s.session, nil
	}
	// A host policy belongs to one session, even one that failed to
	// connect: gocql panics when a policy is initialised twice.
	c := *s.cluster
	policy := gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	c.PoolConfig.HostSelectionPolicy = policy
	sess, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassandra sink %q: connect %s: %w", s.spec.Name, strings.Join(s.cluster.Hosts, ","), err)
	}
	s.session, s.policy = sess, policy
	return sess, nil
}

// hostPolicy returns the session's host selection policy, or nil.
func (s *Sink) hostPolicy() gocql.HostSelectionPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy
}

// Ping reports whether Cassandra answers a query.
func (s *Sink) Ping(ctx context.Context) error {
	sess, err := s.conn()
	if err != nil {
		return err
	}
	var v string
	if err := sess.Query(`SELECT release_version FROM system.local`).WithContext(ctx).Scan(&v); err != nil {
		return fmt.Errorf("cassandra sink %q: ping: %w", s.spec.Name, err)
	}
	return nil
}

// Close closes the session. Later calls fail with ErrPermanent.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.session != nil {
		s.session.Close()
		s.session, s.policy = nil, nil
	}
	return nil
}

// slogAdapter gives gocql's logger interface a *slog.Logger, so the driver's
// messages (node down, reconnects) go where the rest of the sink's go.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Print(v ...any) {
	a.l.Info(strings.TrimSpace(fmt.Sprint(v...)), "source", "gocql")
}
func (a slogAdapter) Printf(format string, v ...any) {
	a.l.Info(strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "gocql")
}
func (a slogAdapter) Println(v ...any) {
	a.l.Info(strings.TrimSpace(fmt.Sprintln(v...)), "source", "gocql")
}

// quote makes a CQL identifier out of a name: names keep their case and may
// be reserved words (a field called "key" or "count").
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// errKind is what a failed statement means for the runner.
type errKind int

const (
	// kindTransient: may go away on retry (timeouts, unavailable or
	// overloaded nodes, lost connections, a cancelled context, and also
	// bad credentials or a missing table, which an operator can fix
	// without the data being at fault).
	kindTransient errKind = iota
	// kindRow: the statement's values are at fault (a value the driver
	// cannot encode or the server refuses); for a batch, one of its rows.
	kindRow
	// kindPermanent: no batch can ever pass (a statement built wrongly).
	kindPermanent
)

// classify sorts a statement's error.
func classify(err error) errKind {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kindTransient
	}
	var me gocql.MarshalError
	if errors.As(err, &me) {
		return kindRow
	}
	var re gocql.RequestError
	if !errors.As(err, &re) {
		// Client side of the connection: timeouts, closed connections,
		// no hosts, a session being made.
		return kindTransient
	}
	switch re.Code() {
	case gocql.ErrCodeSyntax:
		return kindPermanent
	case gocql.ErrCodeInvalid, gocql.ErrCodeProtocol:
		// A missing table or column fails every row alike until the
		// schema is fixed: not the rows' fault.
		msg := strings.ToLower(re.Message())
		for _, schema := range []string{"unconfigured table", "undefined column", "keyspace", "unknown identifier"} {
			if strings.Contains(msg, schema) {
				return kindTransient
			}
		}
		return kindRow
	}
	return kindTransient
}
