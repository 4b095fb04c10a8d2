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
	up     bool      // a session is pulling
	seen   time.Time // the other site last answered
	err    error     // why the last session ended, or did not start
	since  time.Time // down since
	pulls  []*pull   // per partition of the other site, kept across sessions
	events atomic.Uint64
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
		since:    mr.now(),
		err:      errors.New("not connected yet"),
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

// run keeps a session going until ctx ends. A failed session is tried
// again after Backoff, doubling up to MaxBackoff; after a session that ran
// for Recheck or longer the next failure starts the doubling over, and a
// source that does not match waits MaxBackoff at once.
func (l *link) run(ctx context.Context) {
	t := l.mr.timing
	backoff := retry.Backoff{Base: t.Backoff, Cap: t.MaxBackoff, Jitter: retry.Equal}
	attempt := 0
	for {
		start := l.mr.now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			l.setDown(ctx.Err())
			return
		}
		l.setDown(err)
		attempt++
		if l.mr.now().Sub(start) >= t.Recheck {
			attempt = 1
		}
		wait := attempt
		if errors.Is(err, ErrSchema) {
			wait = 64 // the longest
		}
		l.mr.logger.Warn("mirror: link down; trying again", "site", l.src.Site, "topic", l.topic.Name, "url", l.url, "attempt", attempt, "err", err)
		if backoff.Wait(ctx, wait) != nil {
			return
		}
	}
}

// session connects to the other site, checks its topic and pulls every
// partition until something fails or ctx ends.
func (l *link) session(ctx context.Context) error {
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
	if err := l.load(ctx, rec.Partitions); err != nil {
		return err
	}
	l.m.connects.Inc()
	l.setUp()
	l.mr.logger.Info("mirror: link up", "site", l.src.Site, "topic", l.topic.Name, "url", l.url, "partitions", rec.Partitions)
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range l.pulls[:rec.Partitions] {
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

func (l *link) setUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up, l.err = true, nil
	l.seen = l.mr.now()
	l.m.up.Set(1)
}

func (l *link) setDown(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up || l.err == nil {
		l.since = l.mr.now()
	}
	l.up, l.err = false, err
	l.m.up.Set(0)
}

// contact records an answer of the other site.
func (l *link) contact(at time.Time) {
	l.mu.Lock()
	l.seen = at
	l.mu.Unlock()
}

// ready is the link's readiness check.
func (l *link) ready(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.mr.now()
	if !l.up {
		return fmt.Errorf("down for %s: %v", now.Sub(l.since).Round(time.Second), l.err)
	}
	if quiet := now.Sub(l.seen); quiet > l.mr.timing.Stale {
		return fmt.Errorf("no answer from %s for %s", l.url, quiet.Round(time.Second))
	}
	return nil
}

func (l *link) stats() api.LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := api.LinkStats{
		Site: l.src.Site, Topic: l.topic.Name, SourceTopic: l.remote, URL: l.url,
		Consumer: l.consumer, Up: l.up, Events: l.events.Load(), Partitions: len(l.pulls),
	}
	if !l.seen.IsZero() {
		s.Seen = l.seen.UTC()
	}
	if l.err != nil {
		s.Error = l.err.Error()
	}
	return s
}
