package speed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/sinks/all"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/serving"
)

// benchPipeline is the quickstart example: a where, a 1m tumbling window
// by region and one aggregate of every function, and two simpler views of
// the same topic for comparison.
func benchPipeline(b *testing.B, dir, listen string) *pipelines.Pipeline {
	b.Helper()
	p, err := pipelines.Load("../pipelines/examples/quickstart.yaml", func(k string) (string, bool) {
		if k == "LAMBDAFLOW_DATA" {
			return dir, true
		}
		return "", false
	}, all.Types())
	if err != nil {
		b.Fatal(err)
	}
	p.Broker.Listen = listen
	basic := p.Views[0]
	basic.Name, basic.Where = "basic", ""
	basic.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"},
		{Name: "bytes", Func: "sum", Field: "bytes"},
		{Name: "min_cpu", Func: "min", Field: "cpu"},
		{Name: "max_cpu", Func: "max", Field: "cpu"},
		{Name: "avg_cpu", Func: "avg", Field: "cpu"},
	}
	byHost := basic
	byHost.Name, byHost.GroupBy = "by_host", []string{"host"}
	p.Views = append(p.Views, basic, byHost)
	return p
}

// benchEntries encodes entries of n events of the quickstart topic, 1,000
// events per second of event time over 1,000 hosts in 10 regions, as
// ingest would append them.
func benchEntries(p *pipelines.Pipeline, entries, n int) [][]byte {
	t := p.TopicByName("metrics")
	rng := rand.New(rand.NewPCG(9, 9))
	out := make([][]byte, entries)
	at := base
	for i := range out {
		evs := make([]event.Event, n)
		for j := range evs {
			at += 1000
			h := rng.IntN(1000)
			evs[j] = event.Event{ID: strconv.Itoa(i*n + j), Time: at, Values: []event.Value{
				{I: at, Valid: true}, {S: "host-" + strconv.Itoa(h), Valid: true}, {S: "region-" + strconv.Itoa(h%10), Valid: true},
				{F: rng.Float64(), Valid: true}, {I: rng.Int64N(100000), Valid: true},
			}}
		}
		out[i] = broker.AppendEntry(nil, t.Schema, at, evs)
	}
	return out
}

// BenchmarkDecodePlan is the speed layer's work per event: decode a log
// entry (1,000 events) and run a view's plan on it (match, key, windows,
// update; a Flush per entry shows changed windows and finalises closed
// ones), against decoding alone in the same run.
func BenchmarkDecodePlan(b *testing.B) {
	p := benchPipeline(b, b.TempDir(), "")
	schema := p.TopicByName("metrics").Schema
	const perEntry = 1000
	data := benchEntries(p, 64, perEntry)
	var evs []event.Event
	decode := func(i int) {
		var err error
		evs, err = broker.DecodeEntry(data[i%len(data)], schema, evs)
		if err != nil {
			b.Fatal(err)
		}
	}
	// The baseline: decoding alone, timed in this run.
	baseline := func(n int) time.Duration {
		start := time.Now()
		for i := range n {
			decode(i)
		}
		return time.Since(start)
	}
	b.Run("decode-only", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data[0])))
		took := baseline(b.N)
		b.ReportMetric(float64(b.N*perEntry)/took.Seconds(), "events/s")
	})
	for _, view := range []string{"cpu_by_region", "basic", "by_host"} {
		b.Run(view, func(b *testing.B) {
			v := p.ViewByName(view)
			pl, err := plan.Compile(v, p.TopicByName(v.From))
			if err != nil {
				b.Fatal(err)
			}
			e := newEngine(pl, 1)
			var out output
			b.StopTimer()
			dec := baseline(max(b.N, 64))
			b.StartTimer()
			b.ReportAllocs()
			b.SetBytes(int64(len(data[0])))
			start := time.Now()
			off := int64(0)
			for i := range b.N {
				decode(i)
				// Entries repeat: shift them on in event time so that
				// windows keep closing as in a live stream.
				shift := int64(i/len(data)) * int64(len(data)) * perEntry * 1000
				for j := range evs {
					evs[j].Time += shift
				}
				e.Process(0, off, evs)
				off += perEntry
				e.Flush(time.Time{}, &out)
			}
			took := time.Since(start)
			perSec := float64(b.N*perEntry) / took.Seconds()
			decPerSec := float64(max(b.N, 64)*perEntry) / dec.Seconds()
			b.ReportMetric(perSec, "events/s")
			b.ReportMetric(decPerSec, "decode-events/s")
			b.ReportMetric(perSec/decPerSec, "ratio")
		})
	}
}

// BenchmarkStateMemory holds one open window for each of 1M distinct keys
// and reports the heap it takes (runtime.MemStats, after GC).
func BenchmarkStateMemory(b *testing.B) {
	p := benchPipeline(b, b.TempDir(), "")
	for _, c := range []struct{ name, view string }{
		{"count-sum-min-max-avg", "by_host"},
		// every aggregate function: count_distinct and quantile keep a
		// sketch per window, first and last a string and an id
		{"quickstart-aggregates", "cpu_by_region"},
	} {
		b.Run(c.name, func(b *testing.B) {
			v := *p.ViewByName(c.view)
			v.GroupBy = []string{"host"}
			pl, err := plan.Compile(&v, p.TopicByName("metrics"))
			if err != nil {
				b.Fatal(err)
			}
			const keys = 1_000_000
			for range b.N {
				evs := make([]event.Event, 1000)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				e := newEngine(pl, 1)
				for k := 0; k < keys; k += len(evs) {
					for j := range evs {
						host := fmt.Sprintf("host-%07d", k+j)
						evs[j] = event.Event{ID: host, Time: base + int64(j), Values: []event.Value{
							{I: base, Valid: true}, {S: host, Valid: true}, {S: "eu", Valid: true}, {F: 0.5, Valid: true}, {I: 100, Valid: true},
						}}
					}
					e.Process(0, int64(k), evs)
					// No Flush: measure the state alone.
					e.dirty = e.dirty[:0]
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if e.OpenWindows() != keys {
					b.Fatalf("%d windows, want %d", e.OpenWindows(), keys)
				}
				heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
				b.ReportMetric(heap/1e6, "MB")
				b.ReportMetric(heap/keys, "B/key")
				runtime.KeepAlive(e)
			}
		})
	}
}

// probeStore is a Store that notes when each probe row first shows.
type probeStore struct {
	mu      sync.Mutex
	visible map[int]time.Time
}

func (s *probeStore) PutSpeed(_ string, rows []viewrow.Row) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if g := r.Group[0].S; strings.HasPrefix(g, "probe-") {
			n, _ := strconv.Atoi(g[len("probe-"):])
			if _, ok := s.visible[n]; !ok {
				s.visible[n] = now
			}
		}
	}
}

func (s *probeStore) DeleteSpeed(string, []viewrow.Row) {}
func (s *probeStore) EvictSpeed(string, int64) int      { return 0 }

// BenchmarkIngestToVisible appends 50,000 events/s (entries of 100 events
// on 4 partitions, fsync before ack) to an embedded broker for 3 s while
// the speed layer runs, and measures from each Append's return to the
// moment a row of that entry shows in the store: every entry carries one
// probe event of a region of its own.
func BenchmarkIngestToVisible(b *testing.B) {
	for range b.N {
		p := benchPipeline(b, b.TempDir(), "")
		p.Views = p.Views[:1] // cpu_by_region
		ctx, cancel := context.WithCancel(context.Background())
		bk, err := broker.Open(ctx, p, broker.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := bk.EnsureTopics(ctx); err != nil {
			b.Fatal(err)
		}
		store := &probeStore{visible: map[int]time.Time{}}
		node, err := bk.Join(ctx, broker.NodeOptions{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(p, BrokerLog(bk), store, Options{Owner: BrokerOwner(node), Serve: true})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		const (
			rate     = 50000
			perEntry = 100
			parts    = 4
			duration = 3 * time.Second
		)
		interval := time.Second * perEntry / rate // 2 ms
		appended := map[int]time.Time{}
		started := map[int]time.Time{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		seq := 0
		start := time.Now()
		tick := time.NewTicker(interval)
		at := base
		for time.Since(start) < duration {
			<-tick.C
			// Catch up on ticks a busy machine dropped, to hold the rate.
			for seq < int(time.Since(start)/interval) {
				evs := make([]event.Event, perEntry)
				for j := range evs {
					at += int64(time.Second/rate) / 1000
					region := "region-" + strconv.Itoa(j%10)
					if j == 0 {
						region = "probe-" + strconv.Itoa(seq)
					}
					evs[j] = event.Event{ID: strconv.Itoa(seq*perEntry + j), Time: at, Values: []event.Value{
						{I: at, Valid: true}, {S: "host-" + strconv.Itoa(j), Valid: true}, {S: region, Valid: true},
						{F: 0.5, Valid: true}, {I: 100, Valid: true},
					}}
				}
				n := seq
				seq++
				wg.Add(1)
				// Appends of different partitions run in parallel, as
				// ingest's group commit does.
				go func() {
					defer wg.Done()
					t0 := time.Now()
					if _, err := bk.Append(ctx, "metrics", n%parts, evs); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					appended[n], started[n] = time.Now(), t0
					mu.Unlock()
				}()
			}
		}
		tick.Stop()
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for {
			store.mu.Lock()
			n := len(store.visible)
			store.mu.Unlock()
			if n >= seq || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		node.Close()
		bk.Close()

		// lat: from the Append's return (the ingest ack) to visible, 0 when
		// the row showed first; full: from the start of the Append, its
		// fsync included.
		var lat, full []time.Duration
		store.mu.Lock()
		for n, t := range appended {
			if v, ok := store.visible[n]; ok {
				lat = append(lat, max(v.Sub(t), 0))
				full = append(full, v.Sub(started[n]))
			}
		}
		store.mu.Unlock()
		if len(lat) < seq {
			b.Fatalf("%d of %d entries became visible", len(lat), seq)
		}
		slices.Sort(lat)
		slices.Sort(full)
		q := func(d []time.Duration, f float64) float64 { return float64(d[int(f*float64(len(d)-1))]) / 1e6 }
		b.ReportMetric(q(lat, 0.5), "p50-ms")
		b.ReportMetric(q(lat, 0.99), "p99-ms")
		b.ReportMetric(q(full, 0.5), "append-start-p50-ms")
		b.ReportMetric(q(full, 0.99), "append-start-p99-ms")
		b.ReportMetric(float64(seq*perEntry)/duration.Seconds(), "events/s")
	}
}

// BenchmarkCheckpoint encodes the state of 100,000 open windows (the
// quickstart view's aggregates, one window per host) and restores it.
func BenchmarkCheckpoint(b *testing.B) {
	p := benchPipeline(b, b.TempDir(), "")
	v := *p.ViewByName("cpu_by_region")
	v.GroupBy = []string{"host"}
	p.Views = []pipelines.View{v}
	pl, err := plan.Compile(&p.Views[0], p.TopicByName("metrics"))
	if err != nil {
		b.Fatal(err)
	}
	const keys = 100_000
	e := newPartialEngine(pl)
	evs := make([]event.Event, 1000)
	for k := 0; k < keys; k += len(evs) {
		for j := range evs {
			host := fmt.Sprintf("host-%07d", k+j)
			evs[j] = event.Event{ID: host, Time: base + int64(j), Values: []event.Value{
				{I: base, Valid: true}, {S: host, Valid: true}, {S: "eu", Valid: true}, {F: 0.5, Valid: true}, {I: 100, Valid: true},
			}}
		}
		e.Process(0, int64(k), evs)
	}
	em := newEmitter(p, &p.Views[0], &probeStore{})
	m := newMerger(pl, 4)
	var data []byte
	b.Run("encode", func(b *testing.B) {
		for range b.N {
			data, err = encodePart(data[:0], v.Name, 1, 0, 0, 1, e, m, 0, em)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(data)))
		b.ReportMetric(float64(len(data))/keys, "B/window")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/keys, "ns/window")
	})
	b.Run("restore", func(b *testing.B) {
		for range b.N {
			if _, err := decodePart(data, newPartialEngine(pl), newMerger(pl, 4)); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(data)))
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/keys, "ns/window")
	})
}

// BenchmarkManyKeys is one view's work on the stream with 100,000 groups:
// decode a 1,000-event entry, run the plan, flush and emit what changed to a
// serving store (and to the view's log topic, discarded here), as a view's
// goroutine does. Event time moves at 1M events per second and the clock
// with it, so each group gets ten events a second; a 1m tumbling window by
// host stays open throughout. It flushes after every entry (a lightly loaded
// view) or every 64 entries (one under load, which flushes per batch).
//
// Each runs three ways, to compare in one run: emit=1s (the default: open
// windows paced at 1s, to the store and the view's topic), emit=0 (paced
// the same, to the store only) and unpaced (every change of an open window
// shown in the store at every flush, none to the topic: the speed layer
// before open windows reached sinks).
func BenchmarkManyKeys(b *testing.B) {
	p := benchPipeline(b, b.TempDir(), "")
	const (
		keys     = 100_000
		perEntry = 1000
		entries  = 256
	)
	v := p.ViewByName("by_host")
	t := p.TopicByName("metrics")
	pl, err := plan.Compile(v, t)
	if err != nil {
		b.Fatal(err)
	}
	// Entries cover every key in turn, 1µs of event time apart.
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([][]byte, entries)
	for i := range data {
		evs := make([]event.Event, perEntry)
		for j := range evs {
			n := i*perEntry + j
			h := rng.IntN(keys)
			evs[j] = event.Event{ID: strconv.Itoa(n), Time: base + int64(n), Values: []event.Value{
				{I: base + int64(n), Valid: true}, {S: "host-" + strconv.Itoa(h), Valid: true}, {S: "region-" + strconv.Itoa(h%10), Valid: true},
				{F: rng.Float64(), Valid: true}, {I: rng.Int64N(100000), Valid: true},
			}}
		}
		data[i] = broker.AppendEntry(nil, t.Schema, base, evs)
	}
	modes := []struct {
		name     string
		interval time.Duration // the view's emit.interval
		paced    bool
	}{{"emit=1s", time.Second, true}, {"emit=0", 0, true}, {"unpaced", 0, false}}
	for _, every := range []int{1, 64} {
		for _, mode := range modes {
			b.Run(fmt.Sprintf("flush-every-%d/%s", every, mode.name), func(b *testing.B) {
				manyKeys(b, p, v, pl, data, every, mode.interval, mode.paced)
			})
		}
	}
}

// manyKeys is one run of BenchmarkManyKeys: the view v with the given
// emit.interval, its open windows paced by it or shown at every flush.
func manyKeys(b *testing.B, p *pipelines.Pipeline, v *pipelines.View, pl *plan.Plan, data [][]byte, every int, interval time.Duration, paced bool) {
	const perEntry = 1000
	entries := len(data)
	t := p.TopicByName(v.From)
	vv := *v
	vv.Emit.Interval = pipelines.Duration(interval)
	e := newEngine(pl, 1)
	if paced {
		iv, _ := vv.Emit.Open()
		e.SetEmitInterval(iv)
	}
	em := newEmitter(p, &vv, serving.NewStore(p))
	var appended int
	em.append = func(_ context.Context, _ string, _ int, evs []event.Event) (int64, error) {
		appended += len(evs)
		return int64(appended - len(evs)), nil
	}
	var out output
	var evs []event.Event
	var rows int
	var err error
	b.ReportAllocs()
	b.SetBytes(int64(len(data[0])))
	b.ResetTimer()
	cpu0 := benchCPUTime()
	for i := range b.N {
		evs, err = broker.DecodeEntry(data[i%entries], t.Schema, evs)
		if err != nil {
			b.Fatal(err)
		}
		// Entries repeat: shift them on in event time.
		shift := int64(i/entries) * int64(entries) * perEntry
		for j := range evs {
			evs[j].Time += shift
		}
		e.Process(0, int64(i)*perEntry, evs)
		if i%every == every-1 || i == b.N-1 {
			now := time.UnixMicro(base + int64(i+1)*perEntry + shift)
			flushAt(e, now, &out)
			rows += len(out.Open) + len(out.Final)
			em.emit(&out)
			if err := em.flushPending(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*perEntry)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(rows)/float64(b.N*perEntry), "rows/event")
	b.ReportMetric(float64(appended)/float64(b.N*perEntry), "topic-rows/event")
	// CPU time is the steadier figure on a shared machine (the process's,
	// the garbage collector's included).
	b.ReportMetric(float64(benchCPUTime()-cpu0)/float64(b.N*perEntry), "cpu-ns/event")
}

// The window job that bench/peers also runs on Apache Flink (its
// FlinkWindowJob.java computes the same events with the same formulas):
// event i has event time windowJobEpoch + i/10 ms (10,000 events per
// second of event time, in order), key "key-" + (i·2654435761 mod keys)
// and value (i·7919) mod 10007; the job counts, sums and takes the max of
// value per key in tumbling 1-minute windows.
const windowJobEpoch = 1_767_225_600_000 // 2026-01-01T00:00:00Z in ms

func windowJobEvent(i int64, keys []string, vals []event.Value) event.Event {
	t := (windowJobEpoch + i/10) * 1000
	vals[0] = event.Value{I: t, Valid: true}
	vals[1] = event.Value{S: keys[i*2654435761%int64(len(keys))], Valid: true}
	vals[2] = event.Value{I: i * 7919 % 10007, Valid: true}
	return event.Event{ID: strconv.FormatInt(i, 10), Time: t, Values: vals}
}

// windowJobSum is what both engines print to show they computed the same
// thing: the number of final windows and the sums of their count, sum and
// max.
type windowJobSum struct{ windows, count, sum, max int64 }

func (s *windowJobSum) add(rows []viewrow.Row) {
	for _, r := range rows {
		s.windows++
		s.count += r.Aggs[0].I
		s.sum += r.Aggs[1].I
		s.max += r.Aggs[2].I
	}
}

// BenchmarkWindowJob runs the window job through the speed layer's engine
// as the speed layer does (decode each 1,000-event log entry, Process,
// Flush), for 8 and 100,000 keys. One op is the whole job; the entries
// are encoded in chunks outside the timed part, and the figure to compare
// is events per CPU-second of the process (user + system, GC included).
// The checksum line is compared with Flink's by bench/peers.
//
// keys=N shows open windows as a view does by default: a row's first
// change at once, later ones at most once per emit.interval (1s), on a
// clock that is the benchmark's own CPU time (what the wall clock would
// be on a core of its own; a busy machine's wall clock runs faster, and
// would hold back more rows). keys=N-unpaced shows every change of an
// open window at every flush (an entry), the figure this benchmark gave
// before: no user setting does that (emit.interval is at least 100ms).
// Flink's job shows each window once, at its end.
func BenchmarkWindowJob(b *testing.B) {
	topic := &pipelines.Topic{Name: "events", Partitions: 1, Time: "ts", Schema: event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "key", Type: event.TypeString, Required: true},
		{Name: "value", Type: event.TypeLong, Required: true},
	}}
	view := &pipelines.View{
		Name: "job", From: "events", GroupBy: []string{"key"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"}, {Name: "sum", Func: "sum", Field: "value"}, {Name: "max", Func: "max", Field: "value"},
		},
	}
	pl, err := plan.Compile(view, topic)
	if err != nil {
		b.Fatal(err)
	}
	const perEntry, chunk = 1000, 1_000_000
	for _, c := range []struct {
		keys, events int64
		unpaced      bool
	}{{8, 10_000_000, false}, {100_000, 4_000_000, false}, {8, 10_000_000, true}, {100_000, 4_000_000, true}} {
		name := fmt.Sprintf("keys=%d", c.keys)
		if c.unpaced {
			name += "-unpaced"
		}
		b.Run(name, func(b *testing.B) {
			keys := make([]string, c.keys)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
			}
			evs := make([]event.Event, perEntry)
			vals := make([]event.Value, perEntry*3)
			entries := make([][]byte, 0, chunk/perEntry)
			var decoded []event.Event
			for range b.N {
				e := newEngine(pl, 1)
				if !c.unpaced {
					e.SetEmitInterval(pipelines.DefaultEmitInterval)
				}
				var out output
				var sum windowJobSum
				var cpu, wall time.Duration
				var open uint64 // open rows shown
				// The flushes' clock: CPU time spent on the job.
				clock := func() time.Time { return time.Unix(0, 0).Add(cpu) }
				for first := int64(0); first < c.events; first += chunk {
					entries = entries[:0]
					for at := first; at < min(first+chunk, c.events); at += perEntry {
						n := min(perEntry, c.events-at)
						for j := range n {
							evs[j] = windowJobEvent(at+j, keys, vals[j*3:j*3+3:j*3+3])
						}
						entries = append(entries, broker.AppendEntry(nil, topic.Schema, evs[n-1].Time, evs[:n]))
					}
					cpu0, wall0 := benchCPUTime(), time.Now()
					off := first
					for _, data := range entries {
						if decoded, err = broker.DecodeEntry(data, topic.Schema, decoded); err != nil {
							b.Fatal(err)
						}
						e.Process(0, off, decoded)
						off += int64(len(decoded))
						e.Flush(clock().Add(benchCPUTime()-cpu0), &out)
						sum.add(out.Final)
						open += uint64(len(out.Open))
					}
					cpu += benchCPUTime() - cpu0
					wall += time.Since(wall0)
				}
				// The end of the input closes every window, as a bounded
				// source's final watermark does in Flink.
				cpu0 := benchCPUTime()
				e.AdvanceWatermark((windowJobEpoch + c.events/10 + 3_600_000) * 1000)
				e.Flush(clock(), &out)
				sum.add(out.Final)
				cpu += benchCPUTime() - cpu0
				b.ReportMetric(float64(c.events)/cpu.Seconds(), "events/cpu-s")
				b.ReportMetric(float64(c.events)/wall.Seconds(), "events/s")
				b.ReportMetric(float64(open)/float64(c.events), "open-rows/event")
				b.Logf("checksum windows=%d count=%d sum=%d max=%d", sum.windows, sum.count, sum.sum, sum.max)
			}
		})
	}
}

// flushAt flushes e at clock time now.
func flushAt(e *engine, now time.Time, out *output) { e.Flush(now, out) }

// benchCPUTime is the process's user and system CPU time so far.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
