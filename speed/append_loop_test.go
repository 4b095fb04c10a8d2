package speed

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestAppendLoopMergesQueuedBatches: stage-1 batches that queued while the
// log was busy are appended together, each view partition's records of all
// of them in one entry and in the order flushed, and the run counts every
// one of them durable; a batch that comes alone is appended alone.
func TestAppendLoopMergesQueuedBatches(t *testing.T) {
	p := testPipeline(t, pipelineOpts{})
	log := newMemLog(p)
	s, err := New(p, log, newMemStore(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := p.ViewByName("all")
	pt := p.PartialsTopic(v)
	r := &partRun{s: s, vs: &viewSpec{view: v}, part: 1, partials: pt.Name, parts: max(pt.Partitions, 1),
		appends: make(chan partialBatch, partialsQueue)}
	if r.parts < 2 {
		t.Fatalf("the partials topic has %d partitions, the test needs 2 or more", r.parts)
	}
	// batch seq's records: to partition g, n of them, keyed "seq/g/i".
	batch := func(seq uint64, n int) partialBatch {
		b := partialBatch{seq: seq, records: make([][]event.Event, r.parts)}
		for g := range b.records {
			if g == 1 {
				continue // nothing for partition 1 in any batch
			}
			for i := range n {
				pr := partial{source: r.part, epoch: 7, asOf: int64(seq), kind: pipelines.PartialOpen,
					key: fmt.Sprintf("%d/%d/%d", seq, g, i), start: 0, end: 60}
				b.records[g] = append(b.records[g], pr.event())
			}
		}
		return b
	}
	for seq := uint64(1); seq <= 3; seq++ {
		r.appends <- batch(seq, int(seq))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.appendLoop(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("appendLoop: %v", err)
		}
	}()
	waitDurable := func(seq uint64) {
		t.Helper()
		checkFor(t, 5*time.Second, fmt.Sprintf("batch %d durable", seq), func() bool { return r.durable.Load() == seq })
	}
	waitDurable(3)
	r.appends <- batch(4, 2)
	waitDurable(4)

	// entries lists the keys of each entry of partition g.
	entries := func(g int) [][]string {
		log.mu.Lock()
		defer log.mu.Unlock()
		var out [][]string
		for _, e := range log.parts[pt.Name][g].entries {
			var keys []string
			for i := range e.Events {
				pr, ok := decodePartial(&e.Events[i])
				if !ok {
					t.Fatalf("partition %d offset %d: not a partial record", g, e.Offset+int64(i))
				}
				keys = append(keys, pr.key)
			}
			out = append(out, keys)
		}
		return out
	}
	for g := range r.parts {
		got := fmt.Sprint(entries(g))
		want := fmt.Sprintf("[[1/%[1]d/0 2/%[1]d/0 2/%[1]d/1 3/%[1]d/0 3/%[1]d/1 3/%[1]d/2] [4/%[1]d/0 4/%[1]d/1]]", g)
		if g == 1 {
			want = "[]"
		}
		if got != want {
			t.Errorf("partition %d: entries %s, want %s", g, got, want)
		}
	}
}

// TestEntryLen: an entry of partial states holds at most appendMax events
// and, past its first, appendBytes of them; a single larger event goes
// alone.
func TestEntryLen(t *testing.T) {
	sized := func(n, bytes int) []event.Event {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = event.Event{Values: []event.Value{{S: strings.Repeat("x", bytes), Valid: true}}}
		}
		return evs
	}
	one := broker.EventSize(&sized(1, 1000)[0])
	for _, c := range []struct {
		name string
		evs  []event.Event
		want int
	}{
		{"none", nil, 0},
		{"a few small", sized(3, 10), 3},
		{"appendMax small", sized(appendMax, 10), appendMax},
		{"more than appendMax small", sized(appendMax+5, 10), appendMax},
		{"large ones up to appendBytes", sized(2*appendBytes/one, 1000), appendBytes / one},
		{"one larger than appendBytes", sized(2, appendBytes+1), 1},
	} {
		if got := entryLen(c.evs); got != c.want {
			t.Errorf("%s: entryLen = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSpeedMergedPartialsShowTheSameRows: while the log holds a view's
// partial states back, stage 1's flushes queue and are appended together
// when it lets them go, and stage 2 shows exactly the rows of a run whose
// every flush was appended on its own.
func TestSpeedMergedPartialsShowTheSameRows(t *testing.T) {
	const steps = 5
	run := func(hold bool) (dump string, entries []int) {
		p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
		log := newMemLog(p)
		store := newMemStore()
		r := startSpeed(t, p, log, store)
		defer r.stop(t)
		pt := p.PartialsTopic(p.ViewByName("all"))
		// fromSource0 counts each partials partition's entries of stage 1
		// of source partition 0.
		fromSource0 := func() []int {
			log.mu.Lock()
			defer log.mu.Unlock()
			n := make([]int, len(log.parts[pt.Name]))
			for g, part := range log.parts[pt.Name] {
				for _, e := range part.entries {
					if pr, ok := decodePartial(&e.Events[0]); ok && pr.source == 0 {
						n[g]++
					}
				}
			}
			return n
		}
		// One event before, so that both stages run before the log is held.
		publish := func(i int) {
			t.Helper()
			region := fmt.Sprintf("r%d", i)
			e := ev(fmt.Sprintf("e%d", i), int64(i)*sec, "h1", region, float64(i)/4, int64(10*i))
			if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{e}); err != nil {
				t.Fatal(err)
			}
			checkFor(t, 10*time.Second, fmt.Sprintf("stage 1 past event %d", i), func() bool {
				return log.read("speed.all", "metrics", 0) == int64(i+1)
			})
		}
		publish(0)
		checkFor(t, 10*time.Second, "the first row", func() bool { return strings.Contains(store.dump("all"), "r0") })
		before := fromSource0()
		release := func() {}
		if hold {
			release = log.hold(pt.Name)
		}
		for i := 1; i <= steps; i++ {
			publish(i)
			time.Sleep(50 * time.Millisecond) // stage 1 flushes at most every 5 ms
		}
		release()
		checkFor(t, 10*time.Second, "every row", func() bool {
			return strings.Contains(store.dump("all"), fmt.Sprintf("r%d", steps))
		})
		after := fromSource0()
		for g := range after {
			after[g] -= before[g]
		}
		return store.dump("all"), after
	}
	held, heldEntries := run(true)
	alone, aloneEntries := run(false)
	if held != alone {
		t.Errorf("rows with the partial states held and appended together:\n%s\nappended one flush at a time:\n%s", held, alone)
	}
	for g, n := range heldEntries {
		// The first flush waits in the log; the others queue and go in
		// one entry a partition (fewer if stage 1 flushed steps together).
		if n < 1 || n > 2 {
			t.Errorf("partials partition %d: %d entries of source partition 0 while held, want 1 or 2 (one at a time: %d)", g, n, aloneEntries[g])
		}
	}
	t.Logf("entries per partials partition of source partition 0: held %v, one at a time %v", heldEntries, aloneEntries)
}
