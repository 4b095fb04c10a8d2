package mirror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Limits of one pull. A batch gathers the entries that are already there
// (catching up, many small entries of the other site become few local
// ones); an append holds at most maxAppendEvents and about maxAppendBytes,
// below NATS' default max_payload of 1 MiB.
const (
	maxBatchEvents  = 16384
	maxAppendEvents = 4096
	maxAppendBytes  = 512 << 10
	prefetch        = 64 // entries read ahead of the appends
)

// pull is one partition of the other site: where the link stands in it.
// Only its link's session goroutine for that partition touches it.
type pull struct {
	l      *link
	part   int
	source string // broker.Origin.Source: <site>/<topic>/<partition>
	pos    broker.MirrorPosition
	dirty  bool      // pos changed since the last commit
	commit time.Time // last commit
}

// newPull loads the partition's position, or makes one for a new link: it
// starts at the first event the other site still holds, and its marks say
// that the local partitions hold nothing of the source yet, as of their
// current last entries, so that AppendFrom never reads the entries before.
// It is committed at once, before anything is appended.
func (l *link) newPull(ctx context.Context, rp int) (*pull, error) {
	p := &pull{l: l, part: rp, source: l.src.Site + "/" + l.remote + "/" + strconv.Itoa(rp)}
	pos, ok, err := l.mr.log.MirrorPosition(ctx, l.consumer, rp)
	if err != nil {
		return nil, err
	}
	if ok && pos.Topic != l.topic.Name {
		ok = false
	}
	if !ok {
		pos = broker.MirrorPosition{Topic: l.topic.Name}
	}
	// Local partitions added since the position was committed have
	// nothing of the source.
	for lp := len(pos.Marks); lp < l.parts; lp++ {
		seq, err := l.mr.log.LastSeq(ctx, l.topic.Name, lp)
		if err != nil {
			return nil, err
		}
		pos.Marks = append(pos.Marks, broker.Mark{Seq: seq})
	}
	p.pos = pos
	if !ok {
		if err := p.save(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// read is one entry of the other site, or why reading stopped.
type read struct {
	e   broker.Entry
	err error
}

// run pulls until ctx ends or the other site fails to answer; it commits
// its position before it returns.
func (p *pull) run(ctx context.Context, r *broker.Remote) (err error) {
	l, t := p.l, p.l.mr.timing
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.Request)
		if cerr := p.save(sctx); cerr != nil && err == nil && ctx.Err() == nil {
			err = cerr
		}
		cancel()
	}()
	if err := p.refresh(ctx, r); err != nil {
		return err
	}
	rd, err := r.Reader(ctx, p.part, broker.FromOffset(p.pos.Offset))
	if err != nil {
		return fmt.Errorf("%s partition %d: %w", l.url, p.part, err)
	}
	// The reader runs ahead in a goroutine of its own, so that the entries
	// already there can be gathered into one batch without waiting.
	reads := make(chan read, prefetch)
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	wg.Go(func() {
		for {
			e, err := rd.Next(rctx)
			select {
			case reads <- read{e, err}:
			case <-rctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer func() {
		stop()
		rd.Close()
		wg.Wait()
	}()

	// Every Idle, busy or not, the link asks where the partition ends:
	// the lag it shows is against that, and a site that stopped answering
	// ends the session.
	tick := time.NewTicker(t.Idle)
	defer tick.Stop()
	var batch []broker.Entry
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := p.refresh(ctx, r); err != nil {
				return err
			}
			continue
		case rd := <-reads:
			if rd.err != nil {
				return p.readErr(ctx, rd.err)
			}
			batch = append(batch, rd.e)
		}
		// Gather what is already there.
		n := len(batch[0].Events)
		var rerr error
	gather:
		for n < maxBatchEvents {
			select {
			case rd := <-reads:
				if rd.err != nil {
					rerr = rd.err
					break gather
				}
				batch = append(batch, rd.e)
				n += len(rd.e.Events)
			default:
				break gather
			}
		}
		if err := p.apply(ctx, batch); err != nil {
			return err
		}
		if rerr != nil {
			return p.readErr(ctx, rerr)
		}
	}
}

func (p *pull) readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, broker.ErrClosed) {
		return ctx.Err()
	}
	return fmt.Errorf("%s partition %d: %w", p.l.url, p.part, err)
}

// refresh asks the other site where the partition ends and how old its
// oldest event not pulled is, and commits. An error means the other site
// does not answer (or its log was reset): the session ends.
func (p *pull) refresh(ctx context.Context, r *broker.Remote) error {
	l, t := p.l, p.l.mr.timing
	rctx, cancel := context.WithTimeout(ctx, t.Request)
	defer cancel()
	bd, err := r.Bounds(rctx, p.part)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s partition %d: %w", l.url, p.part, err)
	}
	now := l.mr.now()
	if bd.End < p.pos.Offset {
		return fmt.Errorf("%w: partition %d at site %q (%s) ends at offset %d, but %d were pulled: its log was emptied or is another one",
			ErrSchema, p.part, l.src.Site, l.url, bd.End, p.pos.Offset)
	}
	var oldest, oldestEvent int64
	if bd.End > p.pos.Offset {
		es, err := r.Fetch(rctx, p.part, broker.FromOffset(p.pos.Offset), 1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s partition %d: %w", l.url, p.part, err)
		}
		if len(es) > 0 {
			oldest, oldestEvent = es[0].Appended, es[0].MinTime
		}
	}
	l.contact(now)
	if bd.End != p.pos.End || oldest != p.pos.Oldest || oldestEvent != p.pos.OldestEvent {
		p.pos.End, p.pos.Oldest, p.pos.OldestEvent, p.dirty = bd.End, oldest, oldestEvent, true
	}
	p.pos.Seen = now.UnixMicro()
	return p.save(rctx)
}

// save commits the position (with the time of this contact) if it
// changed, or if the last commit is older than the staleness bound (so that
// Seen stays fresh in the lag).
func (p *pull) save(ctx context.Context) error {
	now := p.l.mr.now()
	if !p.dirty && now.Sub(p.commit) < p.l.mr.timing.Stale/2 && !p.commit.IsZero() {
		return nil
	}
	if err := p.l.mr.log.CommitMirror(ctx, p.l.consumer, p.part, p.pos); err != nil {
		return err
	}
	p.dirty, p.commit = false, now
	return nil
}

// apply appends a batch of the other site's consecutive entries to the
// local topic and moves the position past them.
func (p *pull) apply(ctx context.Context, batch []broker.Entry) error {
	l := p.l
	first, last := batch[0], batch[len(batch)-1]
	now := l.mr.now()
	l.contact(now)
	p.pos.Seen = now.UnixMicro()
	p.pos.End = max(p.pos.End, last.End())
	p.pos.Oldest, p.pos.OldestEvent = first.Appended, first.MinTime
	if first.Offset > p.pos.Offset {
		// Retention at the other site removed these before they were
		// pulled: nothing can bring them back.
		lost := first.Offset - p.pos.Offset
		l.m.lost.Add(float64(lost))
		l.mr.logger.Error("mirror: events removed at the other site before they were pulled", "site", l.src.Site, "topic", l.topic.Name,
			"partition", p.part, "from", p.pos.Offset, "to", first.Offset)
	}
	start := max(first.Offset, p.pos.Offset)
	end := last.End()

	// Split by local partition, keeping each event's offset there.
	byPart := make([][]event.Event, l.parts)
	offs := make([][]int64, l.parts)
	for _, e := range batch {
		var slab []event.Value // the entry's values given a site, in one allocation
		for i := range e.Events {
			off := e.Offset + int64(i)
			ev, err := l.complete(e.Events[i], off, p.part, &slab, len(e.Events)-i)
			if err != nil {
				return err
			}
			lp := event.EventPartition(&ev, l.keyIdx, l.keyType, l.parts)
			byPart[lp] = append(byPart[lp], ev)
			offs[lp] = append(offs[lp], off)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for lp := range byPart {
		if len(byPart[lp]) == 0 {
			// It holds every event of the source below end that is its.
			p.pos.Marks[lp].HW = max(p.pos.Marks[lp].HW, end)
			continue
		}
		g.Go(func() error { return p.appendPart(gctx, lp, byPart[lp], offs[lp], start, end) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.pos.Offset = end
	if end >= p.pos.End {
		p.pos.Oldest, p.pos.OldestEvent = 0, 0
	}
	p.dirty = true
	if now.Sub(p.commit) >= l.mr.timing.Commit {
		return p.save(ctx)
	}
	return nil
}

// complete returns a pulled event with its site, when the other site's
// topic has none (its own events), and checks that it has every field the
// local topic requires. The Reader's events are shared with other Readers,
// so an event given its site gets values of its own, taken from slab (grown
// for the left events of the entry when it is full).
func (l *link) complete(ev event.Event, off int64, part int, slab *[]event.Value, left int) (event.Event, error) {
	if v := ev.Values[l.siteIdx]; !v.Valid || v.S == "" {
		n := len(ev.Values)
		if cap(*slab)-len(*slab) < n {
			*slab = make([]event.Value, 0, n*left)
		}
		at := len(*slab)
		*slab = append(*slab, ev.Values...)
		ev.Values = (*slab)[at : at+n : at+n]
		ev.Values[l.siteIdx] = event.Value{S: l.src.Site, Valid: true}
	}
	for _, i := range l.required {
		if !ev.Values[i].Valid {
			return ev, fmt.Errorf("%w: event %q at site %q, partition %d offset %d, has no %q, which topic %q requires",
				ErrSchema, ev.ID, l.src.Site, part, off, l.topic.Schema[i].Name, l.topic.Name)
		}
	}
	return ev, nil
}

// appendPart appends the events of one local partition (offs are their
// offsets at the other site, ascending, all in [start, end)) in entries of
// at most maxAppendEvents, skipping those the partition already holds.
func (p *pull) appendPart(ctx context.Context, lp int, evs []event.Event, offs []int64, start, end int64) error {
	l := p.l
	since := p.pos.Marks[lp]
	since.HW = max(since.HW, p.pos.Offset)
	i, from := 0, start
	for i < len(evs) {
		j, size := i, 0
		for j < len(evs) && j-i < maxAppendEvents && (j == i || size+broker.EventSize(&evs[j]) <= maxAppendBytes) {
			size += broker.EventSize(&evs[j])
			j++
		}
		to := end
		if j < len(evs) {
			to = offs[j]
		}
		mark, err := l.mr.log.AppendFrom(ctx, l.topic.Name, lp, evs[i:j], broker.Origin{Source: p.source, Start: from, End: to, Since: since})
		if ahead, ok := errors.AsType[*broker.AheadError](err); ok {
			// Appended before (a retry after a failure, another process):
			// skip what is there, append the rest.
			since = ahead.Mark
			k := i
			for k < len(evs) && offs[k] < since.HW {
				k++
			}
			l.m.skipped.Add(float64(k - i))
			i, from = k, max(from, since.HW)
			continue
		}
		if err != nil {
			return fmt.Errorf("append to %s partition %d: %w", l.topic.Name, lp, err)
		}
		l.m.events.Add(float64(j - i))
		l.m.entries.Inc()
		l.events.Add(uint64(j - i))
		since, i, from = mark, j, to
	}
	since.HW = max(since.HW, end)
	p.pos.Marks[lp] = since
	return nil
}
