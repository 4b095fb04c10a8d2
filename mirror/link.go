package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// ErrSchema is returned (wrapped) when the other site's topic cannot be
// pulled into the local one: their schemas differ, or the site there is not
// the one the source names. The link tries again (the other site may be
// fixed), at the longest backoff.
var ErrSchema = errors.New("mirror: the source does not match the local topic")

// errRecordChanged ends a session when the other site's topic record
// changes (more partitions, another schema): the link opens it again.
var errRecordChanged = errors.New("mirror: the other site's topic record changed")

// link pulls one source into one local topic.
type link struct {
	mr       *Mirror
	topic    *pipelines.Topic
	src      *pipelines.Source
	path     string // where the source is in the file
	consumer string
	remote   string // the topic's name at the other site
	url      string // the source's URLs without credentials

	// How events are placed and completed locally.
	parts    int
	keyIdx   int
	keyType  event.FieldType
	siteIdx  int
	required []int // positions of required fields other than the site

	m linkMetrics

	mu     sync.Mutex
	seen   time.Time          // the other site last answered
	states map[int]*linkState // by share (allShares when not shared)
	pulls  []*pull            // per partition of the other site, kept across sessions (allShares only)
	shared map[int]int        // partitions of the other site pulled, by share held
	events atomic.Uint64
}

// allShares is the share of a link that pulls every partition: the link
// of a process that is no node of a cluster (Options.Owner nil).
const allShares = -1

// linkState is how the sessions of one share of a link fare.
type linkState struct {
	up    bool      // a session is pulling
	err   error     // why the last session ended, or did not start
	since time.Time // down since
}

func newLink(mr *Mirror, t *pipelines.Topic, src *pipelines.Source, path string) (*link, error) {
	l := &link{
		mr: mr, topic: t, src: src, path: path,
		consumer: src.Consumer(t.Name),
		remote:   src.SourceTopicName(t.Name),
		url:      broker.RedactURLs(src.URL),
		parts:    max(t.Partitions, 1),
		keyIdx:   -1,
		siteIdx:  t.Schema.Index(pipelines.SiteField),
		m:        mr.m.forLink(src.Site, t.Name),
		states:   map[int]*linkState{},
		shared:   map[int]int{},
	}
	if mr.owner == nil {
		l.states[allShares] = &linkState{since: mr.now(), err: errors.New("not connected yet")}
	}
	if l.siteIdx < 0 {
		return nil, fmt.Errorf("mirror: topic %q has sources but no %s field", t.Name, pipelines.SiteField)
	}
	if t.Key != "" {
		if i := t.Schema.Index(t.Key); i >= 0 {
			l.keyIdx, l.keyType = i, t.Schema[i].Type
		}
	}
	for i, f := range t.Schema {
		if f.Required && i != l.siteIdx {
			l.required = append(l.required, i)
		}
	}
	return l, nil
}

// runOwned pulls the shares of the link this process owns: share q is
// the other site's partitions rp with rp mod (local partitions) = q, owned
// through the cluster like a partition of any consumer, so that each is
// pulled by one live process at a time and moves when that process stops,
// dies or another joins.
func (l *link) runOwned(ctx context.Context) {
	own, err := l.mr.owner.OwnPartitions(l.consumer, l.parts, func(sctx context.Context, lease *broker.Lease) error {
		q := lease.Partition()
		l.mu.Lock()
		l.states[q] = &linkState{since: l.mr.now(), err: errors.New("not connected yet")}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.states, q)
			delete(l.shared, q)
			l.mu.Unlock()
			l.setMetric()
		}()
		l.run(sctx, q)
		return nil
	})
	if err != nil {
		l.mr.logger.Error("mirror: link not started", "site", l.src.Site, "topic", l.topic.Name, "err", err)
		return
	}
	<-ctx.Done()
	own.Stop()
}

// run keeps a session of share (allShares: every partition) going until
// ctx ends. A failed session is tried again after Backoff, doubling up to
// MaxBackoff; after a session that ran for Recheck or longer the next
// failure starts the doubling over, and a source that does not match
// waits MaxBackoff at once.
func (l *link) run(ctx context.Context, share int) {
	t := l.mr.timing
	backoff := retry.Backoff{Base: t.Backoff, Cap: t.MaxBackoff, Jitter: retry.Equal}
	attempt := 0
	for {
		start := l.mr.now()
		err := l.session(ctx, share)
		if ctx.Err() != nil {
			l.setDown(share, ctx.Err())
			return
		}
		l.setDown(share, err)
		attempt++
		if l.mr.now().Sub(start) >= t.Recheck {
			attempt = 1
		}
		wait := attempt
		if errors.Is(err, ErrSchema) {
			wait = 64 // the longest
		}
		l.mr.logger.Warn("mirror: link down; trying again", "site", l.src.Site, "topic", l.topic.Name, "url", l.url, "share", share, "attempt", attempt, "err", err)
		if backoff.Wait(ctx, wait) != nil {
			return
		}
	}
}

// session connects to the other site, checks its topic and pulls the
// share's partitions (every partition for allShares) until something fails
// or ctx ends.
func (l *link) session(ctx context.Context, share int) error {
	t := l.mr.timing
	octx, cancel := context.WithTimeout(ctx, t.Request)
	r, err := broker.OpenRemote(octx, broker.RemoteOptions{
		Source: *l.src, Topic: l.remote, Schema: l.topic.Schema,
		Name: "lambdaflow " + l.mr.p.Name + " mirror", Path: l.path,
	}, broker.Options{Logger: l.mr.logger.With("site", l.src.Site), Now: l.mr.now})
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %w", l.url, err)
	}
	defer r.Close()
	rec := r.Record()
	if err := l.check(rec); err != nil {
		return err
	}
	pulls, err := l.sharePulls(ctx, share, rec.Partitions)
	if err != nil {
		return err
	}
	l.m.connects.Inc()
	l.setUp(share, len(pulls))
	l.mr.logger.Info("mirror: link up", "site", l.src.Site, "topic", l.topic.Name, "url", l.url, "partitions", rec.Partitions, "share", share, "pulled", len(pulls))
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range pulls {
		g.Go(func() error { return p.run(gctx, r) })
	}
	g.Go(func() error { return l.watch(gctx, r, rec) })
	return g.Wait()
}

// watch reads the other site's topic record every Recheck and ends the
// session when it changed.
func (l *link) watch(ctx context.Context, r *broker.Remote, rec broker.TopicRecord) error {
	tick := time.NewTicker(l.mr.timing.Recheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, l.mr.timing.Request)
		now, err := r.Describe(rctx, l.remote)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", l.url, err)
		}
		if now.Partitions != rec.Partitions || !slices.Equal(now.Schema, rec.Schema) || now.Site != rec.Site {
			return errRecordChanged
		}
	}
}

// check compares the other site's topic with the local one: the site must
// be the one the source names, and every field but _site must be in both
// with the same type, required here only if required there (a field only
// there would be dropped; one required only here could be missing).
func (l *link) check(rec broker.TopicRecord) error {
	if rec.Site != l.src.Site {
		return fmt.Errorf("%w: the site at %s calls itself %q, not %q (set %s.site to the other site's site, or its pipeline name)",
			ErrSchema, l.url, rec.Site, l.src.Site, l.path)
	}
	var diffs []string
	there := rec.EventSchema()
	for _, f := range l.topic.Schema {
		if pipelines.IsSiteField(f) {
			continue
		}
		i := there.Index(f.Name)
		switch {
		case i < 0:
			diffs = append(diffs, fmt.Sprintf("field %q is not there", f.Name))
		case there[i].Type != f.Type:
			diffs = append(diffs, fmt.Sprintf("field %q is %s there, %s here", f.Name, typeName(there[i].Type), f.Type))
		case f.Required && !there[i].Required:
			diffs = append(diffs, fmt.Sprintf("field %q is optional there, required here", f.Name))
		}
	}
	for _, f := range there {
		switch {
		case f.Name == pipelines.SiteField:
			if f.Type != event.TypeString {
				diffs = append(diffs, fmt.Sprintf("field %q is %s there", f.Name, typeName(f.Type)))
			}
		case l.topic.Schema.Index(f.Name) < 0:
			diffs = append(diffs, fmt.Sprintf("field %q is not here", f.Name))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: topic %q at site %q (%s) and topic %q here differ: %s", ErrSchema,
			l.remote, l.src.Site, l.url, l.topic.Name, strings.Join(diffs, "; "))
	}
	return nil
}

func typeName(t event.FieldType) string {
	if t == 0 {
		return "of an unknown type"
	}
	return t.String()
}

// sharePulls returns the pulls of share's partitions of the other site,
// which has parts. A share's positions are read afresh at each session:
// another process may have pulled them since this one last did.
func (l *link) sharePulls(ctx context.Context, share, parts int) ([]*pull, error) {
	if share == allShares {
		if err := l.load(ctx, parts); err != nil {
			return nil, err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.pulls[:parts], nil
	}
	var out []*pull
	for rp := share; rp < parts; rp += l.parts {
		p, err := l.newPull(ctx, rp)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// load reads the link's positions the first time, and adds the partitions
// the other site gained since.
func (l *link) load(ctx context.Context, parts int) error {
	for rp := len(l.pulls); rp < parts; rp++ {
		p, err := l.newPull(ctx, rp)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.pulls = append(l.pulls, p)
		l.mu.Unlock()
	}
	return nil
}

func (l *link) setUp(share, pulled int) {
	l.mu.Lock()
	if st := l.states[share]; st != nil {
		st.up, st.err = true, nil
	}
	l.shared[share] = pulled
	l.seen = l.mr.now()
	l.mu.Unlock()
	l.setMetric()
}

func (l *link) setDown(share int, err error) {
	l.mu.Lock()
	if st := l.states[share]; st != nil {
		if st.up || st.err == nil {
			st.since = l.mr.now()
		}
		st.up, st.err = false, err
	}
	delete(l.shared, share)
	l.mu.Unlock()
	l.setMetric()
}

// setMetric shows the link up unless a share this process pulls is down.
func (l *link) setMetric() {
	_, err := l.down()
	if err != nil {
		l.m.up.Set(0)
	} else {
		l.m.up.Set(1)
	}
}

// down returns the first share this process holds that is not pulling,
// and why; nil when every share it holds pulls (or it holds none).
func (l *link) down() (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	shares := make([]int, 0, len(l.states))
	for q := range l.states {
		shares = append(shares, q)
	}
	slices.Sort(shares)
	for _, q := range shares {
		if st := l.states[q]; !st.up {
			return st.since, st.err
		}
	}
	return time.Time{}, nil
}

// contact records an answer of the other site.
func (l *link) contact(at time.Time) {
	l.mu.Lock()
	l.seen = at
	l.mu.Unlock()
}

// ready is the link's readiness check: every share this process holds is
// pulling, and the other site answered lately. A process that holds no
// share of the link (others pull it) is ready.
func (l *link) ready(context.Context) error {
	since, err := l.down()
	now := l.mr.now()
	if err != nil {
		return fmt.Errorf("down for %s: %v", now.Sub(since).Round(time.Second), err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.states) == 0 {
		return nil
	}
	if quiet := now.Sub(l.seen); quiet > l.mr.timing.Stale {
		return fmt.Errorf("no answer from %s for %s", l.url, quiet.Round(time.Second))
	}
	return nil
}

// stats reports the link as this process runs it: Partitions are the
// other site's partitions it pulls; Up says they all pull (false when it
// pulls none: another process does, and Error says so).
func (l *link) stats() api.LinkStats {
	_, err := l.down()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := api.LinkStats{
		Site: l.src.Site, Topic: l.topic.Name, SourceTopic: l.remote, URL: l.url,
		Consumer: l.consumer, Events: l.events.Load(),
	}
	for _, n := range l.shared {
		s.Partitions += n
	}
	s.Up = err == nil && len(l.shared) > 0
	if !l.seen.IsZero() {
		s.Seen = l.seen.UTC()
	}
	switch {
	case err != nil:
		s.Error = err.Error()
	case len(l.states) == 0:
		s.Error = "pulled by other processes"
	}
	return s
}
