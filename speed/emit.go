package speed

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Store is where the speed layer shows its rows: the serving layer's view
// store. Calls come from the runs and replicas of every partition of every
// view at once, so an implementation must be safe for concurrent use; the
// rows of one (group, window) always come from one goroutine at a time. It
// may keep the rows' Group and Aggs, not the slices of rows it is given.
type Store interface {
	// PutSpeed records the current values of windows (open or final),
	// replacing earlier values of the same window of the same group.
	PutSpeed(view string, rows []viewrow.Row)
	// DeleteSpeed removes the rows of windows that no longer exist: a
	// session that merged into another or started earlier. Rows are
	// identified by Group and Start; their Aggs are not set.
	DeleteSpeed(view string, rows []viewrow.Row)
	// EvictSpeed drops the rows of windows that ended before endBefore
	// (UTC µs): final windows past the view's retention.
	EvictSpeed(view string, endBefore int64) int
}

// speedIDPrefix starts the id of every row the speed layer appends to a
// view's log topic, so that it can tell its rows from the batch layer's
// corrections when it reads them back (docs/checkpoint-format.md).
const speedIDPrefix = "speed/"

// maxRanges bounds the ranges of final rows remembered per partition of
// the view's topic (see emitter.ranges).
const maxRanges = 4096

// emitter hands an engine's output to the store and to the view's log
// topic (the rows of open windows, when emit.interval asks for them, the
// tombstones of vanished sessions and the final rows), and evicts final
// rows past the view's retention.
type emitter struct {
	view      string
	topic     string // the view's log topic
	parts     int    // partitions of the view topic
	store     Store
	append    func(ctx context.Context, topic string, part int, events []event.Event) (int64, error)
	open      bool  // append open windows' rows and tombstones too, not only final rows
	retention int64 // µs
	step      int64 // eviction granularity, µs

	evicted int64 // the last cutoff given to EvictSpeed
	// ends[p] is the offset after the last row this view appended to
	// partition p of its topic, as of the state the engine is in.
	ends []int64
	// ranges[p] are the offset ranges of partition p holding the final
	// rows that may still be within retention, in offset order: where a
	// restart reads the topic to show those rows again, skipping the
	// open windows' rows around them.
	ranges [][]finalRange
	// pending holds rows not yet handed to the log, in the order they
	// must land (per group: open rows, then the final row): a checkpoint
	// may not be taken while any row is pending or appending, or final
	// rows would be lost.
	pending []viewrow.Row
	scratch appendScratch
}

// finalRange is a range [from, to) of offsets of the view's topic that
// holds final rows, and the latest window end among them.
type finalRange struct {
	from, to, maxEnd int64
}

func newEmitter(p *pipelines.Pipeline, v *pipelines.View, store Store) *emitter {
	vt := p.ViewTopic(v)
	retention := v.Retention.D().Microseconds()
	if retention <= 0 {
		retention = 24 * 3600e6
	}
	_, open := v.Emit.Open()
	em := &emitter{
		view:      v.Name,
		topic:     vt.Name,
		parts:     max(vt.Partitions, 1),
		store:     store,
		open:      open,
		retention: retention,
		step:      max(retention/64, 1),
		evicted:   plan.NoWatermark,
	}
	em.ends = make([]int64, em.parts)
	em.ranges = make([][]finalRange, em.parts)
	return em
}

// cutoff returns the end before which final rows are evicted at watermark
// wm. It moves in steps of retention/64, so that the rows shown are a
// function of the watermark alone, and EvictSpeed runs 64 times per
// retention rather than after every entry.
func (em *emitter) cutoff(wm int64) int64 {
	if wm == plan.NoWatermark {
		return plan.NoWatermark
	}
	c := plan.Earlier(wm, em.retention)
	return floorDiv(c, em.step) * em.step
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// emit shows out in the store and queues its rows for the view's topic
// (pending), which flushPending or an appender makes durable.
func (em *emitter) emit(out *output) {
	if len(out.Gone) > 0 {
		em.store.DeleteSpeed(em.view, out.Gone)
	}
	if len(out.Open) > 0 {
		em.store.PutSpeed(em.view, out.Open)
	}
	if len(out.Final) > 0 {
		em.store.PutSpeed(em.view, out.Final)
	}
	if em.append != nil {
		// Within one output the three concern different windows; across
		// outputs, the order of appends keeps a window's final row after
		// its open ones.
		if em.open {
			em.pending = append(em.pending, out.Gone...)
			em.pending = append(em.pending, out.Open...)
		}
		em.pending = append(em.pending, out.Final...)
	}
	if out.HasWatermark {
		if c := em.cutoff(out.Watermark); c > em.evicted {
			em.store.EvictSpeed(em.view, c)
			em.evicted = c
			em.trimRanges(c)
		}
	}
}

// flushPending appends the pending rows to the view's topic here and now.
// On an error (ctx ended, or the log failed) every pending row stays
// pending: appending a row twice is harmless (sinks upsert), losing one is
// not.
func (em *emitter) flushPending(ctx context.Context) error {
	if len(em.pending) == 0 {
		return nil
	}
	ls, err := em.appendBatch(ctx, em.pending, &em.scratch)
	em.land(ls)
	if err != nil {
		return err
	}
	clear(em.pending)
	em.pending = em.pending[:0]
	return nil
}

// takePending hands the pending rows over, to an appender.
func (em *emitter) takePending() []viewrow.Row {
	rows := em.pending
	em.pending = nil
	return rows
}

// land records appends that are durable: where the view's rows end, and
// the ranges of its final rows.
func (em *emitter) land(ls []landed) {
	for _, l := range ls {
		em.ends[l.part] = max(em.ends[l.part], l.end)
		if l.final.from >= 0 {
			em.addRange(l.part, l.final)
		}
	}
}

// addRange remembers a range of final rows of partition part, joining it
// to the previous one when they touch. Past maxRanges, the two neighbours
// with the fewest other rows between them become one: a restart then reads
// those rows too, but the checkpoint stays small.
func (em *emitter) addRange(part int, r finalRange) {
	rs := em.ranges[part]
	if n := len(rs); n > 0 && rs[n-1].to >= r.from {
		rs[n-1].to, rs[n-1].maxEnd = max(rs[n-1].to, r.to), max(rs[n-1].maxEnd, r.maxEnd)
		return
	}
	rs = append(rs, r)
	if len(rs) > maxRanges {
		best := 0
		for i := 1; i < len(rs)-1; i++ {
			if rs[i+1].from-rs[i].to < rs[best+1].from-rs[best].to {
				best = i
			}
		}
		rs[best].to, rs[best].maxEnd = rs[best+1].to, max(rs[best].maxEnd, rs[best+1].maxEnd)
		rs = append(rs[:best+1], rs[best+2:]...)
	}
	em.ranges[part] = rs
}

// trimRanges forgets ranges whose rows all ended before cutoff.
func (em *emitter) trimRanges(cutoff int64) {
	for p, rs := range em.ranges {
		n := 0
		for n < len(rs) && rs[n].maxEnd < cutoff {
			n++
		}
		em.ranges[p] = rs[n:]
	}
}

// rowID is the id of a row in the view's log topic: the same for every row
// of one window and group (open, final or tombstone), and when a restarted
// speed layer appends the row again: speed/<start>/<hash of the group>,
// the hash FNV-1a 64 (hex) over each group value as a byte 0 (null) or 1
// followed by its integer and its double's bits (8 bytes each, little
// endian), its string's length (uvarint) and the string.
func rowID(r viewrow.Row) string {
	h := uint64(fnvOffset64)
	write := func(b ...byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= fnvPrime64
		}
	}
	var buf [binary.MaxVarintLen64]byte
	for _, v := range r.Group {
		if !v.Valid {
			write(0)
			continue
		}
		write(1)
		write(binary.LittleEndian.AppendUint64(buf[:0], uint64(v.I))...)
		write(binary.LittleEndian.AppendUint64(buf[:0], math.Float64bits(v.F))...)
		write(binary.AppendUvarint(buf[:0], uint64(len(v.S)))...)
		for i := 0; i < len(v.S); i++ {
			write(v.S[i])
		}
	}
	b := make([]byte, 0, 48)
	b = append(b, speedIDPrefix...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, h, 16)
	return string(b)
}

// nopStore is the store of a process that computes views but does not
// serve them: nothing is kept.
type nopStore struct{}

func (nopStore) PutSpeed(string, []viewrow.Row)    {}
func (nopStore) DeleteSpeed(string, []viewrow.Row) {}
func (nopStore) EvictSpeed(string, int64) int      { return 0 }

// FNV-1a, 64 bit (the constants of hash/fnv).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)
