package speed

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Store is where the speed layer shows its rows: the serving layer's view
// store. Calls for one view come from one goroutine; calls for different
// views may run concurrently, so an implementation must be safe for
// concurrent use. It may keep the rows' Group and Aggs, not the slices of
// rows it is given.
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

// appendMax bounds the events of one append of final rows.
const appendMax = 1000

// emitter hands an engine's output to the store and the final rows to the
// view's log topic, and evicts final rows past the view's retention.
type emitter struct {
	view      string
	topic     string // the view's log topic
	parts     int    // partitions of the view topic
	store     Store
	append    func(ctx context.Context, topic string, part int, events []event.Event) (int64, error)
	retention int64 // µs
	step      int64 // eviction granularity, µs

	evicted int64 // the last cutoff given to EvictSpeed
	// ends[p] is the offset after the last row this view appended to
	// partition p of its topic, as of the state the engine is in.
	ends []int64
	// marks[p] are the appends to partition p whose rows may still be
	// within retention, oldest first; the first one's offset is where a
	// restart starts reading the topic to show those rows again.
	marks [][]mark
	// pending holds final rows not yet durable in the log: a checkpoint
	// may not be taken while there are any, or they would be lost.
	pending []viewrow.Row
	events  []event.Event
}

// mark is one append of final rows: its first offset and the latest end
// among its rows.
type mark struct {
	offset, maxEnd int64
}

func newEmitter(p *pipelines.Pipeline, v *pipelines.View, store Store) *emitter {
	vt := p.ViewTopic(v)
	retention := v.Retention.D().Microseconds()
	if retention <= 0 {
		retention = 24 * 3600e6
	}
	em := &emitter{
		view:      v.Name,
		topic:     vt.Name,
		parts:     max(vt.Partitions, 1),
		store:     store,
		retention: retention,
		step:      max(retention/64, 1),
		evicted:   plan.NoWatermark,
	}
	em.ends = make([]int64, em.parts)
	em.marks = make([][]mark, em.parts)
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

// emit shows out in the store and makes its final rows durable in the log.
// An error means the final rows could not be appended (ctx ended, or the
// log failed permanently); they stay pending and emit or flushPending must
// succeed before the next checkpoint.
func (em *emitter) emit(ctx context.Context, out *output) error {
	if len(out.Gone) > 0 {
		em.store.DeleteSpeed(em.view, out.Gone)
	}
	if len(out.Open) > 0 {
		em.store.PutSpeed(em.view, out.Open)
	}
	if len(out.Final) > 0 {
		em.store.PutSpeed(em.view, out.Final)
		em.pending = append(em.pending, out.Final...)
	}
	err := em.flushPending(ctx)
	if out.HasWatermark {
		if c := em.cutoff(out.Watermark); c > em.evicted {
			em.store.EvictSpeed(em.view, c)
			em.evicted = c
			em.trimMarks(c)
		}
	}
	return err
}

// flushPending appends the pending final rows to the view's log topic, a
// partition per group as the batch layer does, so that a later batch
// correction of a window lands after the speed row in the same partition.
func (em *emitter) flushPending(ctx context.Context) error {
	if em.append == nil || len(em.pending) == 0 {
		em.pending = em.pending[:0]
		return nil
	}
	byPart := make([][]viewrow.Row, em.parts)
	for _, r := range em.pending {
		p := event.ViewRowPartition(r.Group, em.parts)
		byPart[p] = append(byPart[p], r)
	}
	for p, rows := range byPart {
		for len(rows) > 0 {
			n := min(len(rows), appendMax)
			if err := em.appendRows(ctx, p, rows[:n]); err != nil {
				// Keep what is not yet durable; appending a row twice
				// is harmless (sinks upsert), losing one is not.
				var rest []viewrow.Row
				for q := p; q < len(byPart); q++ {
					if q == p {
						rest = append(rest, rows...)
					} else {
						rest = append(rest, byPart[q]...)
					}
				}
				em.pending = rest
				return err
			}
			rows = rows[n:]
		}
	}
	em.pending = em.pending[:0]
	return nil
}

func (em *emitter) appendRows(ctx context.Context, part int, rows []viewrow.Row) error {
	em.events = em.events[:0]
	maxEnd := int64(math.MinInt64)
	for i := range rows {
		r := &rows[i]
		em.events = append(em.events, r.Event(rowID(*r)))
		maxEnd = max(maxEnd, r.End)
	}
	first, err := em.append(ctx, em.topic, part, em.events)
	if err != nil {
		return fmt.Errorf("speed: view %q: append final rows to topic %q partition %d: %w", em.view, em.topic, part, err)
	}
	em.ends[part] = max(em.ends[part], first+int64(len(rows)))
	em.marks[part] = append(em.marks[part], mark{offset: first, maxEnd: maxEnd})
	return nil
}

// trimMarks forgets appends whose rows all ended before cutoff.
func (em *emitter) trimMarks(cutoff int64) {
	for p, ms := range em.marks {
		n := 0
		for n < len(ms) && ms[n].maxEnd < cutoff {
			n++
		}
		em.marks[p] = ms[n:]
	}
}

// retainFrom returns, per partition of the view topic, the offset from
// which a restart reads rows back into the store.
func (em *emitter) retainFrom() []int64 {
	out := make([]int64, em.parts)
	for p := range out {
		if ms := em.marks[p]; len(ms) > 0 {
			out[p] = ms[0].offset
		} else {
			out[p] = em.ends[p]
		}
	}
	return out
}

// rowID is the id of a final row in the view's log topic: unique per
// window and group, and the same when a restarted speed layer appends the
// row again.
func rowID(r viewrow.Row) string {
	h := fnv.New64a()
	h.Write([]byte(r.Key))
	b := make([]byte, 0, 48)
	b = append(b, speedIDPrefix...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, h.Sum64(), 16)
	return string(b)
}
