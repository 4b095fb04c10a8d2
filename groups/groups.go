package groups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Log is what groups need of the log (a *broker.Broker).
type Log interface {
	FetchFrom(ctx context.Context, topic string, part int, offset int64, cur *broker.Cursor, maxEvents, maxBytes int) ([]broker.Entry, broker.Bounds, error)
	Bounds(ctx context.Context, topic string, part int) (broker.Bounds, error)
	Appended(parts ...broker.Part) (*broker.Watch, error)
	Commit(ctx context.Context, consumer, topic string, part int, offset, eventTime int64) error
	Committed(ctx context.Context, consumer, topic string, part int) (int64, bool, error)
	States(ctx context.Context, bucket string) (*broker.States, error)
	Lag(ctx context.Context) ([]api.Lag, error)
}

// Others lists consumer groups kept elsewhere (the Kafka listener's), so
// that GET /v1/groups shows every group.
type Others interface {
	Groups(ctx context.Context) ([]api.Group, error)
}

// Options are the dependencies of Groups.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of sessions; nil means time.Now.
	Now func() time.Time
	// Others, when set, adds their groups to the listings.
	Others Others
	// Registerer gets the groups' metrics. Nil means a private registry.
	Registerer prometheus.Registerer
}

// bucket holds the HTTP groups' records.
const bucket = "groups"

// Session timeouts a member may ask for.
const (
	defaultSession = 30 * time.Second
	minSession     = time.Second
	maxSession     = 30 * time.Minute
)

// ConsumerName is the name of an HTTP group's committed positions in lag.
func ConsumerName(group string) string { return "http." + group }

// Groups serves the HTTP API's consumer groups. Safe for concurrent use.
type Groups struct {
	p       *pipelines.Pipeline
	log     Log
	logger  *slog.Logger
	now     func() time.Time
	others  Others
	topics  map[string]*pipelines.Topic
	metrics *metrics

	mu sync.Mutex
	st *broker.States
}

// New returns the groups of pipeline p on log.
func New(p *pipelines.Pipeline, log Log, opts Options) (*Groups, error) {
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	g := &Groups{p: p, log: log, logger: opts.Logger, now: opts.Now, others: opts.Others, topics: map[string]*pipelines.Topic{}, metrics: m}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	for i := range p.Topics {
		g.topics[p.Topics[i].Name] = &p.Topics[i]
	}
	return g, nil
}

func (g *Groups) store(ctx context.Context) (*broker.States, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st == nil {
		st, err := g.log.States(ctx, bucket)
		if err != nil {
			return nil, err
		}
		g.st = st
	}
	return g.st, nil
}

func key(group string) string { return broker.NameKey("g", group) }

func (g *Groups) partitions(topic string) int {
	if t := g.topics[topic]; t != nil {
		return max(t.Partitions, 1)
	}
	return 0
}

// errNotFound: the group has no such member (it left or expired).
var errNotFound = errors.New("unknown member: it left or was silent longer than its session timeout; join again")

// update applies the clock (expiry) and fn to a group's record with
// compare-and-set. fn reports whether it changed s.
func (g *Groups) update(ctx context.Context, group string, fn func(s *state, now int64) (bool, error)) (*state, error) {
	st, err := g.store(ctx)
	if err != nil {
		return nil, err
	}
	var s *state
	var before int64 // the generation the last attempt started from
	_, _, err = st.Update(ctx, key(group), func(old []byte) ([]byte, bool, error) {
		s = &state{}
		if old != nil {
			if err := json.Unmarshal(old, s); err != nil {
				return nil, false, fmt.Errorf("groups: %q: stored state: %w", group, err)
			}
		}
		before = s.Generation
		now := g.now().UnixMicro()
		changed := s.expire(now, g.partitions)
		fchanged, ferr := fn(s, now)
		if !changed && !fchanged {
			return nil, false, ferr
		}
		b, err := json.Marshal(s)
		return b, err == nil, errors.Join(err, ferr)
	})
	if s == nil {
		return nil, err
	}
	if err == nil && s.Generation > before {
		g.metrics.rebalances.WithLabelValues(group).Add(float64(s.Generation - before))
	}
	return s, err
}

// touch records a sign of life of member and returns the group.
func (g *Groups) touch(ctx context.Context, group, id string) (*state, *member, error) {
	var m *member
	s, err := g.update(ctx, group, func(s *state, now int64) (bool, error) {
		if m = s.member(id); m == nil {
			return false, errNotFound
		}
		m.Seen = now
		return true, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return s, s.member(id), nil
}

func (g *Groups) join(ctx context.Context, group string, j api.Join) (api.Membership, error) {
	session := defaultSession
	if j.SessionTimeout != "" {
		d, err := time.ParseDuration(j.SessionTimeout)
		if err != nil || d < minSession || d > maxSession {
			return api.Membership{}, badRequest("session_timeout must be a duration from 1s to 30m, got %q", j.SessionTimeout)
		}
		session = d
	}
	reset := j.Reset
	if reset == "" {
		reset = "earliest"
	}
	if reset != "earliest" && reset != "latest" {
		return api.Membership{}, badRequest("reset must be earliest or latest, got %q", j.Reset)
	}
	if len(j.Topics) == 0 {
		return api.Membership{}, badRequest("topics: name at least one topic to read")
	}
	for _, t := range j.Topics {
		if g.topics[t] == nil {
			return api.Membership{}, badRequest("unknown topic %q", t)
		}
	}
	id := NewMemberID(j.Client)
	s, err := g.update(ctx, group, func(s *state, now int64) (bool, error) {
		topics := slices.Clone(j.Topics)
		slices.Sort(topics)
		s.Members = append(s.Members, &member{ID: id, Client: j.Client, Topics: slices.Compact(topics), Session: session.Milliseconds(), Reset: reset, Seen: now})
		s.rebalance(g.partitions)
		return true, nil
	})
	if err != nil {
		return api.Membership{}, err
	}
	return membership(group, s, s.member(id)), nil
}

func membership(group string, s *state, m *member) api.Membership {
	return api.Membership{Group: group, Member: m.ID, Generation: s.Generation, Assignments: assignments(m.Assigned),
		SessionTimeout: (time.Duration(m.Session) * time.Millisecond).String()}
}

func (g *Groups) leave(ctx context.Context, group, id string) error {
	_, err := g.update(ctx, group, func(s *state, now int64) (bool, error) {
		if s.member(id) == nil {
			return false, errNotFound
		}
		s.Members = slices.DeleteFunc(s.Members, func(m *member) bool { return m.ID == id })
		s.rebalance(g.partitions)
		return true, nil
	})
	return err
}

// list returns every HTTP group's name.
func (g *Groups) list(ctx context.Context) ([]string, error) {
	st, err := g.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Names(ctx, "g")
}

// describe returns one HTTP group with its committed positions and lag;
// ok is false when it does not exist.
func (g *Groups) describe(ctx context.Context, group string, lag []api.Lag) (api.Group, bool, error) {
	s, err := g.update(ctx, group, func(*state, int64) (bool, error) { return false, nil })
	if err != nil {
		return api.Group{}, false, err
	}
	if s.Generation == 0 {
		return api.Group{}, false, nil
	}
	out := api.Group{Group: group, Protocol: "http", Consumer: ConsumerName(group), State: "Stable", Generation: s.Generation,
		Members: []api.GroupMember{}}
	if len(s.Members) == 0 {
		out.State = "Empty"
	}
	for _, m := range s.Members {
		seen := time.UnixMicro(m.Seen).UTC().Format(time.RFC3339Nano)
		out.Members = append(out.Members, api.GroupMember{Member: m.ID, Client: m.Client, Assignments: assignments(m.Assigned), LastSeen: &seen})
	}
	out.Partitions, out.Lag = Positions(out.Consumer, lag)
	return out, true, nil
}

// Positions picks a consumer's committed positions out of lag, and sums
// their lag.
func Positions(consumer string, lag []api.Lag) ([]api.GroupPartition, int64) {
	out := []api.GroupPartition{}
	var total int64
	for _, l := range lag {
		if l.Consumer == consumer {
			out = append(out, api.GroupPartition{Topic: l.Topic, Partition: l.Partition, Committed: l.Offset, EndOffset: l.EndOffset, Lag: l.Lag, LagSeconds: l.LagSeconds})
			total += l.Lag
		}
	}
	slices.SortFunc(out, func(a, b api.GroupPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out, total
}

// commit stores offsets for member, each of a partition it owns now.
// Without offsets, what was delivered to it is committed.
func (g *Groups) commit(ctx context.Context, group, id string, c api.Commit) (api.Committed, error) {
	s, m, err := g.touch(ctx, group, id)
	if err != nil {
		return api.Committed{}, err
	}
	offs := c.Offsets
	if len(offs) == 0 {
		for _, p := range m.Assigned {
			if pos, ok := s.Positions[p.key()]; ok {
				offs = append(offs, api.CommitOffset{Topic: p.Topic, Partition: p.Partition, Offset: pos})
			}
		}
	}
	for _, o := range offs {
		if !m.owns(o.Topic, o.Partition) {
			return api.Committed{}, &conflictError{fmt.Sprintf("partition %s/%d is not assigned to member %s in generation %d", o.Topic, o.Partition, id, s.Generation)}
		}
		if o.Offset < 0 {
			return api.Committed{}, badRequest("offset of %s/%d must not be negative", o.Topic, o.Partition)
		}
	}
	for _, o := range offs {
		if err := g.log.Commit(ctx, ConsumerName(group), o.Topic, o.Partition, o.Offset, 0); err != nil {
			return api.Committed{}, err
		}
	}
	if offs == nil {
		offs = []api.CommitOffset{}
	}
	return api.Committed{Offsets: offs}, nil
}
