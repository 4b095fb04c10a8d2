package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Log is what the mirror needs of the local log; *broker.Broker has it.
type Log interface {
	// AppendFrom appends pulled events unless the partition already holds
	// events of their source from o.Start on (then an *broker.AheadError).
	AppendFrom(ctx context.Context, topic string, part int, events []event.Event, o broker.Origin) (broker.Mark, error)
	// LastSeq is the sequence of the partition's last entry.
	LastSeq(ctx context.Context, topic string, part int) (uint64, error)
	// CommitMirror and MirrorPosition keep a link's position.
	CommitMirror(ctx context.Context, consumer string, part int, pos broker.MirrorPosition) error
	MirrorPosition(ctx context.Context, consumer string, part int) (broker.MirrorPosition, bool, error)
}

var _ Log = (*broker.Broker)(nil)

// Owner hands out the shares of each link that this process pulls;
// *broker.Node is one.
type Owner interface {
	OwnPartitions(consumer string, parts int, run func(context.Context, *broker.Lease) error) (*broker.Ownership, error)
}

var _ Owner = (*broker.Node)(nil)

// Options are the dependencies a Mirror gets from its owner.
type Options struct {
	// Logger gets the links' messages. Nil discards them.
	Logger *slog.Logger
	// Now is the clock of positions and lag. Nil means time.Now.
	Now func() time.Time
	// Registerer gets the mirror's metrics. Nil means a private registry.
	Registerer prometheus.Registerer
	// Timing overrides the links' timing; tests shorten it.
	Timing Timing
	// Owner, when set, shares each link's partitions with the other
	// processes running it: each partition of the other site is pulled by
	// one live process at a time. Nil pulls every partition here.
	Owner Owner
}

// Timing is how often links look and how long they wait.
type Timing struct {
	// Idle is how long a link waits for entries before it asks the other
	// site for its end offsets (lag) again; also how often a caught-up
	// link proves the other site still answers.
	Idle time.Duration
	// Commit is the longest a busy link goes without committing its
	// position.
	Commit time.Duration
	// Recheck is how often a link reads the other site's topic record
	// again, to notice a schema or partition change.
	Recheck time.Duration
	// Request bounds one request to the other site (connect, bounds).
	Request time.Duration
	// Backoff is the first wait before a failed link tries again; it
	// doubles up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Stale is how long a link may go without an answer from the other
	// site before it is reported down.
	Stale time.Duration
}

// defaultTiming is what a running pipeline uses.
var defaultTiming = Timing{
	Idle:       time.Second,
	Commit:     250 * time.Millisecond,
	Recheck:    30 * time.Second,
	Request:    10 * time.Second,
	Backoff:    time.Second,
	MaxBackoff: 15 * time.Second,
	Stale:      10 * time.Second,
}

// Mirror runs every link of a pipeline. Create it with New, run it with
// Run; Checks and AddStats are safe for concurrent use.
type Mirror struct {
	p      *pipelines.Pipeline
	log    Log
	logger *slog.Logger
	now    func() time.Time
	timing Timing
	m      *metrics
	owner  Owner
	links  []*link
}

// New prepares a link for every source of every topic of p. p must have
// its defaults filled (the site field included) and must not change.
func New(p *pipelines.Pipeline, log Log, opts Options) (*Mirror, error) {
	if p == nil || log == nil {
		return nil, errors.New("mirror: New needs a pipeline and a log")
	}
	mr := &Mirror{p: p, log: log, logger: opts.Logger, now: opts.Now, timing: opts.Timing, owner: opts.Owner}
	if mr.logger == nil {
		mr.logger = slog.New(slog.DiscardHandler)
	}
	if mr.now == nil {
		mr.now = time.Now
	}
	mr.timing = withDefaults(mr.timing)
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	mr.m = m
	for i := range p.Topics {
		t := &p.Topics[i]
		for j := range t.Sources {
			l, err := newLink(mr, t, &t.Sources[j], fmt.Sprintf("topics[%d].sources[%d]", i, j))
			if err != nil {
				return nil, err
			}
			mr.links = append(mr.links, l)
		}
	}
	return mr, nil
}

func withDefaults(t Timing) Timing {
	d := defaultTiming
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.Idle, d.Idle)
	set(&t.Commit, d.Commit)
	set(&t.Recheck, d.Recheck)
	set(&t.Request, d.Request)
	set(&t.Backoff, d.Backoff)
	set(&t.MaxBackoff, d.MaxBackoff)
	set(&t.Stale, d.Stale)
	return t
}

// Run runs every link until ctx ends, then commits their positions and
// returns nil. A link that fails tries again by itself, with backoff; Run
// does not return for it.
func (mr *Mirror) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, l := range mr.links {
		if mr.owner != nil {
			wg.Go(func() { l.runOwned(ctx) })
		} else {
			wg.Go(func() { l.run(ctx, allShares) })
		}
	}
	wg.Wait()
	return nil
}

// Checks returns one readiness check per link, named "link <site>
// <topic>": nil while it pulls, otherwise why not.
func (mr *Mirror) Checks() []httpapi.Check {
	out := make([]httpapi.Check, 0, len(mr.links))
	for _, l := range mr.links {
		out = append(out, httpapi.Check{Name: "link " + l.src.Site + " " + l.topic.Name, Ready: l.ready})
	}
	return out
}

// AddStats adds every link to s.
func (mr *Mirror) AddStats(s *api.Stats) {
	for _, l := range mr.links {
		s.Links = append(s.Links, l.stats())
	}
}
