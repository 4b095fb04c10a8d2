package batch

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestEarlyFlushOfSettledBurst: a burst that arrives in time order (a
// backfill of 256 hours, 256 rows an hour, in entries of 4,096 rows that
// alternate between two partitions) asks for a flush once the buffer holds
// earlyRows rows, two thirds of them in periods the last quietRows rows
// did not touch: here exactly when the buffer reaches 49,152 rows
// (49,152 − 16,384 settled). Flushed then and again at the end, the lake
// holds every row once, one file per hour. The same rows in no order, or
// a burst within two hours, never ask for an early flush.
func TestEarlyFlushOfSettledBurst(t *testing.T) {
	const hours, perHour, entry = 256, 256, 4096
	ordered := make([]event.Event, hours*perHour)
	for i := range ordered {
		ordered[i] = testEvent("e", i, t0, time.Hour/perHour)
	}
	feed := func(t *testing.T, evs []event.Event, onRequest func(tw *topicWriter, buffered int64)) *topicWriter {
		_, _, open := ownedWriterSetup(t)
		tw := open()
		for part := range 2 {
			tw.parts[part] = &partWriter{committed: -1}
		}
		next := [2]int64{}
		for k := 0; k*entry < len(evs); k++ {
			part := k % 2
			e := &broker.Entry{Offset: next[part], Events: evs[k*entry : (k+1)*entry], Ingest: 1}
			next[part] += entry
			if err := tw.add(part, tw.gen, e); err != nil {
				t.Fatal(err)
			}
			select {
			case <-tw.due:
				onRequest(tw, tw.buf.rows)
			default:
			}
		}
		return tw
	}

	t.Run("in time order", func(t *testing.T) {
		var requests []int64
		ctx := context.Background()
		tw := feed(t, ordered, func(tw *topicWriter, buffered int64) {
			requests = append(requests, buffered)
			if err := tw.flush(ctx); err != nil {
				t.Fatal(err)
			}
		})
		// 49,152 rows flushed early; the 16,384 after them (four
		// entries) are not enough for another.
		if len(requests) != 1 || requests[0] != 49152 {
			t.Fatalf("early flushes requested at %v buffered rows, want [49152]", requests)
		}
		if err := tw.flush(ctx); err != nil {
			t.Fatal(err)
		}
		m := tw.tl.ms.snapshot()
		if len(m.Files()) != hours {
			t.Errorf("%d files, want %d (one per hour)", len(m.Files()), hours)
		}
		var rows int64
		for _, f := range m.Files() {
			rows += f.Rows
			if f.Rows != perHour {
				t.Errorf("%s holds %d rows, want %d", f.Path, f.Rows, perHour)
			}
		}
		for part := range 2 {
			if ps := m.partition(part); ps.Next != hours*perHour/2 || ps.Rows != hours*perHour/2 {
				t.Errorf("partition %d: %+v, want next and rows %d", part, ps, hours*perHour/2)
			}
		}
		if rows != hours*perHour {
			t.Errorf("the lake holds %d rows, want %d", rows, hours*perHour)
		}
	})

	t.Run("in no order", func(t *testing.T) {
		shuffled := append([]event.Event(nil), ordered...)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		feed(t, shuffled, func(_ *topicWriter, buffered int64) { t.Errorf("early flush requested at %d buffered rows", buffered) })
	})

	t.Run("two hours", func(t *testing.T) {
		live := make([]event.Event, hours*perHour)
		for i := range live {
			live[i] = testEvent("l", i, t0, 2*time.Hour/time.Duration(len(live)))
		}
		feed(t, live, func(_ *topicWriter, buffered int64) { t.Errorf("early flush requested at %d buffered rows", buffered) })
	})
}
