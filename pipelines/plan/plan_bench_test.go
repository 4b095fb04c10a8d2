package plan

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// benchEvents are ops-metrics-example events: 1000 hosts in 10 regions. Times are
// set in the loop, 10µs apart, so 1m windows roll every 6M events.
func benchEvents(n int) []event.Event {
	rng := rand.New(rand.NewPCG(31, 32))
	es := make([]event.Event, n)
	for i := range es {
		h := rng.IntN(1000)
		es[i] = event.Event{ID: fmt.Sprint("ev-", i), Values: []event.Value{
			{Valid: true},
			{S: fmt.Sprint("host-", h), Valid: true},
			{S: fmt.Sprint("region-", h%10), Valid: true},
			{F: rng.Float64() * 100, Valid: true},
			{I: rng.Int64N(1 << 20), Valid: true},
			{}, {}, {}, {},
		}}
	}
	return es
}

const benchT0 = 1_700_000_000_000_000

// baselineStep is the least a keyed tumbling window does: a map update of
// count and sum under region + window start.
type baselineAgg struct {
	count int64
	sum   float64
}

func runBaseline(es []event.Event, n int) time.Duration {
	states := make(map[string]*baselineAgg)
	var key []byte
	start := time.Now()
	for i := range n {
		e := &es[i%len(es)]
		t := benchT0 + int64(i)*10
		ws := t - t%(60*usSec)
		key = append(key[:0], e.Values[testtopic.Region].S...)
		key = binary.LittleEndian.AppendUint64(key, uint64(ws))
		s := states[string(key)]
		if s == nil {
			s = new(baselineAgg)
			states[string(key)] = s
		}
		s.count++
		s.sum += e.Values[testtopic.CPU].F
	}
	return time.Since(start)
}

// runPlan is what the speed layer does per event: Match, Key, Windows, then
// Update of the (key, window) state, found by key bytes + window start.
func runPlan(b *testing.B, p *Plan, es []event.Event, n int) {
	states := make(map[string]*aggregate.State)
	m := p.NewMatcher()
	var key []byte
	var ws []TimeWindow
	for i := range n {
		e := &es[i%len(es)]
		e.Time = benchT0 + int64(i)*10
		e.Values[testtopic.TS].I = e.Time
		ok, err := m.Match(e)
		if err != nil {
			b.Fatal(err)
		}
		if !ok {
			continue
		}
		key = p.Key(e, key)
		kl := len(key)
		ws = p.Windows(e.Time, ws[:0])
		for _, w := range ws {
			key = binary.LittleEndian.AppendUint64(key[:kl], uint64(w.Start))
			s := states[string(key)]
			if s == nil {
				s = p.NewState()
				states[string(key)] = s
			}
			p.Update(s, e)
		}
	}
}

// BenchmarkPlanThroughput reports events/s per core through Match + Key +
// Windows + Update, and the baseline's events/s measured in the same run
// over the same events, and their ratio.
func BenchmarkPlanThroughput(b *testing.B) {
	basic := designView()
	basic.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"},
		{Name: "bytes", Func: "sum", Field: "bytes"},
		{Name: "min_cpu", Func: "min", Field: "cpu"},
		{Name: "max_cpu", Func: "max", Field: "cpu"},
		{Name: "avg_cpu", Func: "avg", Field: "cpu"},
	}
	hopping := designView()
	hopping.Window = pipelines.Window{Type: "hopping", Size: minutes(5), Slide: minutes(1)}
	for _, c := range []struct {
		name string
		v    *pipelines.View
	}{
		{"count-sum-min-max-avg", basic},
		{"design-view", designView()}, // + count_distinct(host), quantile(cpu, 0.95)
		{"design-view-hopping-5m-1m", hopping},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := mustCompile(b, c.v)
			es := benchEvents(1 << 16)
			b.StopTimer()
			base := runBaseline(es, b.N)
			b.StartTimer()
			b.ReportAllocs()
			start := time.Now()
			runPlan(b, p, es, b.N)
			took := time.Since(start)
			b.ReportMetric(float64(b.N)/took.Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/base.Seconds(), "baseline-events/s")
			b.ReportMetric(took.Seconds()/base.Seconds(), "x-baseline-time")
		})
	}
}

// BenchmarkPlanSteps breaks the per-event cost down.
func BenchmarkPlanSteps(b *testing.B) {
	p := mustCompile(b, designView())
	es := benchEvents(1 << 12)
	for i := range es {
		es[i].Time = benchT0 + int64(i)
	}
	b.Run("match-matcher", func(b *testing.B) {
		m := p.NewMatcher()
		b.ReportAllocs()
		for i := range b.N {
			m.Match(&es[i%len(es)])
		}
	})
	b.Run("match-plan-pool", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			p.Match(&es[i%len(es)])
		}
	})
	b.Run("key", func(b *testing.B) {
		var key []byte
		b.ReportAllocs()
		for i := range b.N {
			key = p.Key(&es[i%len(es)], key)
		}
	})
	b.Run("windows", func(b *testing.B) {
		var ws []TimeWindow
		b.ReportAllocs()
		for i := range b.N {
			ws = p.Windows(es[i%len(es)].Time, ws[:0])
		}
	})
	for _, agg := range []pipelines.Aggregate{
		{Name: "count", Func: "count"},
		{Name: "sum_long", Func: "sum", Field: "bytes"},
		{Name: "sum_double", Func: "sum", Field: "cpu"},
		{Name: "max_double", Func: "max", Field: "cpu"},
		{Name: "count_distinct", Func: "count_distinct", Field: "host"},
		{Name: "quantile", Func: "quantile", Field: "cpu", Arg: 0.95},
		{Name: "last_string", Func: "last", Field: "host"},
	} {
		b.Run("update-"+agg.Name, func(b *testing.B) {
			v := designView()
			v.Aggregates = pipelines.Aggregates{agg}
			p := mustCompile(b, v)
			s := p.NewState()
			b.ReportAllocs()
			for i := range b.N {
				p.Update(s, &es[i%len(es)])
			}
		})
	}
}

// BenchmarkPlanStateBytes reports the heap bytes of one (key, window) state
// after k events, and its checkpoint size, for the ops-metrics view and for its
// count/sum/min/max/avg part alone.
func BenchmarkPlanStateBytes(b *testing.B) {
	basic := designView()
	basic.Aggregates = basic.Aggregates[:4]
	es := benchEvents(1 << 12)
	for _, c := range []struct {
		name string
		v    *pipelines.View
		ks   []int
	}{{"design-view", designView(), []int{1, 10, 100, 1000, 10000}}, {"count-avg-max-sum", basic, []int{1}}} {
		p := mustCompile(b, c.v)
		for _, k := range c.ks {
			b.Run(fmt.Sprintf("%s/events-%d", c.name, k), func(b *testing.B) {
				// Capped: the figure is bytes per state, not time.
				states := make([]*aggregate.State, min(b.N, 20000))
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range states {
					s := p.NewState()
					for j := range k {
						p.Update(s, &es[(i*k+j)%len(es)])
					}
					states[i] = s
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				enc, _ := states[0].MarshalBinary()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(states)), "heap-B/state")
				b.ReportMetric(float64(len(enc)), "checkpoint-B/state")
				runtime.KeepAlive(states)
			})
		}
	}
}

func BenchmarkPlanMergeFinalize(b *testing.B) {
	p := mustCompile(b, designView())
	es := benchEvents(1 << 12)
	part := p.NewState()
	for i := range es {
		p.Update(part, &es[i])
	}
	b.Run("merge", func(b *testing.B) {
		dst := p.NewState()
		b.ReportAllocs()
		for range b.N {
			p.Merge(dst, part)
		}
	})
	b.Run("finalize", func(b *testing.B) {
		var out []event.Value
		b.ReportAllocs()
		for range b.N {
			out = p.AppendFinal(out[:0], part)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for range b.N {
			buf, _ = part.AppendBinary(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
}
