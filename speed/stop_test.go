package speed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestSoftStopShowsEveryEventReadByStage1 is the regression test of a soft
// stop that left the stopping process's rows behind what its stages 1 had
// read: each stage 2 stopped reading the partials topic at once, so the
// records its reader had not delivered yet, and the last records the stages
// 1 sent while stopping, were in neither the rows it showed and appended
// nor its last checkpoint (a successor made them whole; the stopping
// process did not).
//
// The log makes stage 1's records durable only once stage 2 can no longer
// read them the usual way: every record once the runs' partials readers
// are closed, and source partition 1's only once partition 0 of the view
// waits for it (or, without that wait, has checkpointed). So stage 2 has
// seen none of them when the process stops; its rows and checkpoint must
// hold them all.
func TestSoftStopShowsEveryEventReadByStage1(t *testing.T) {
	const parts = 2
	p := testPipeline(t, pipelineOpts{partitions: parts, lateness: "0s"})
	views := []string{"all", "hop", "sessions"}
	partials := map[string]string{} // partials topic -> view
	for _, v := range views {
		partials[p.PartialsTopic(p.ViewByName(v)).Name] = v
	}
	log := newMemLog(p)
	// Per view: the partials readers of its runs are closed; partition 0
	// waits for partition 1 or has checkpointed.
	readersClosed, partition0 := map[string]chan struct{}{}, map[string]chan struct{}{}
	for _, v := range views {
		readersClosed[v], partition0[v] = make(chan struct{}), make(chan struct{})
	}
	log.gate = func(topic string, _ int, events []event.Event) <-chan struct{} {
		v, ok := partials[topic]
		if !ok {
			return nil
		}
		if pr, ok := decodePartial(&events[0]); ok && pr.source == 1 {
			return partition0[v]
		}
		return readersClosed[v]
	}
	// Two bursts of events, so that every kind of window has final rows
	// (the sessions of the first burst) and open ones; an entry per
	// partition, appended before the speed layer starts, so that each
	// stage 1 sends two batches at most (its progress, its windows) and
	// never waits for room while the log holds them.
	rng := rand.New(rand.NewPCG(7, 7))
	events := slices.DeleteFunc(genEvents(rng, 900, 8, 40*minute), func(e event.Event) bool {
		return e.Time >= base+10*minute && e.Time < base+30*minute
	})
	slices.SortFunc(events, func(a, b event.Event) int { return int(a.Time - b.Time) })
	byPart := make([][]event.Event, parts)
	for _, e := range events {
		part := fnv32(e.Values[1].S) % parts
		byPart[part] = append(byPart[part], e)
	}
	ref := newMemStore()
	local, err := NewLocal(p, ref, timeAt(0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ends := make([]int64, parts)
	for part, evs := range byPart {
		if _, err := log.Append(t.Context(), "metrics", part, evs); err != nil {
			t.Fatal(err)
		}
		if err := local.Append("metrics", part, evs); err != nil {
			t.Fatal(err)
		}
		ends[part] = int64(len(evs))
	}
	store := newMemStore()
	r := startSpeed(t, p, log, store)
	checkFor(t, 30*time.Second, "stage 1 of every view and partition to read every event", func() bool {
		for _, v := range views {
			for part, end := range ends {
				if log.read("speed."+v, "metrics", part) != end {
					return false
				}
			}
		}
		return true
	})
	openReaders := func() int {
		n := 0
		for topic := range partials {
			n += log.openReaders(topic)
		}
		return n
	}
	checkFor(t, 30*time.Second, "a partials reader per partition run and no replica's", func() bool { return openReaders() == parts*len(views) })
	for _, v := range views {
		if rows := store.dump(v); rows != "" {
			t.Fatalf("view %s: rows shown before the stop; the log let stage 2 read partial states:\n%s", v, rows)
		}
	}

	// A view's runs stop one view after the other: each view's records
	// are let through on its own conditions.
	var gates sync.WaitGroup
	for topic, v := range partials {
		gates.Go(func() {
			defer close(partition0[v])
			wait := func(what string, cond func() bool) {
				err := testenv.Poll(context.Background(), 30*time.Second, time.Millisecond, func() error {
					if cond() {
						return nil
					}
					return errors.New("still waiting for " + what)
				})
				if err != nil {
					t.Errorf("view %s: %v", v, err)
				}
			}
			wait("the runs' partials readers to close", func() bool { return log.openReaders(topic) == 0 })
			close(readersClosed[v])
			wait("partition 0 to wait for partition 1, or to checkpoint", func() bool {
				_, _, ck, _ := log.CommittedCheckpoint(context.Background(), "speed."+v, topic, 0)
				return r.s.stops.waiters(v) > 0 || ck
			})
		})
	}
	r.stop(t)
	gates.Wait()

	for _, v := range views {
		want := ref.dump(v)
		if !strings.Contains(want, "final=true") || !strings.Contains(want, "final=false") {
			t.Errorf("view %s: the reference has no final or no open rows; the test is too weak", v)
		}
		if got := store.dump(v); got != want {
			t.Errorf("view %s: rows after the soft stop differ from every event's:\n%s", v, diffLines(want, got))
		}
		topic := p.PartialsTopic(p.ViewByName(v)).Name
		for part := range parts {
			end, err := log.End(t.Context(), topic, part)
			if err != nil {
				t.Fatal(err)
			}
			if got := log.committed("speed."+v, topic, part); got != end {
				t.Errorf("view %s partition %d: the stop's checkpoint applied partial states up to %d of %d", v, part, got, end)
			}
		}
	}
}

// TestSoftStopSendsTheFlushThatWaitedForTheLog is the regression test of a
// stop that came while stage 1 waited for room to hand a batch of records
// to its appender (the log slow to make the ones before durable): the run
// returned the context's error there, with no soft stop, so that batch and
// every row and checkpoint after the previous one were missing from the
// stopping process.
func TestSoftStopSendsTheFlushThatWaitedForTheLog(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	log := newMemLog(p)
	topic := p.PartialsTopic(p.ViewByName("all")).Name
	released := make(chan struct{})
	log.gate = func(tp string, _ int, _ []event.Event) <-chan struct{} {
		if tp == topic {
			return released
		}
		return nil
	}
	store := newMemStore()
	r := startSpeed(t, p, log, store)
	ref := newMemStore()
	local, err := NewLocal(p, ref, timeAt(0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	events := func() float64 { return metricValue(r.s.metrics.events.WithLabelValues("all")) }
	// Stage 1 of partition 0 sends a batch when it starts (its progress),
	// which its appender holds, waiting for the log, and one per entry,
	// each flushed before the next entry comes (the events counter moves
	// as a flush begins): four wait in the queue, the fifth entry's in
	// the flush, for room.
	for i := range partialsQueue + 1 {
		e := ev(fmt.Sprintf("e%d", i), int64(i)*minute, "h1", "eu", 0.5, 10)
		if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		if err := local.Append("metrics", 0, []event.Event{e}); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 30*time.Second, fmt.Sprintf("the flush of entry %d", i), func() bool { return events() == float64(i+1) })
	}
	var gate sync.WaitGroup
	gate.Go(func() {
		defer close(released)
		err := testenv.Poll(context.Background(), 30*time.Second, time.Millisecond, func() error {
			if log.openReaders(topic) > 0 {
				return errors.New("still waiting for the runs' partials readers to close")
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	r.stop(t)
	gate.Wait()

	if got := log.committed("speed.all", "metrics", 0); got != partialsQueue+1 {
		t.Errorf("partition 0 checkpointed at offset %d on the stop, want %d", got, partialsQueue+1)
	}
	if want, got := ref.dump("all"), store.dump("all"); got != want {
		t.Errorf("rows after the soft stop differ from every event's:\n%s", diffLines(want, got))
	}
}
