package broker

import (
	"encoding/json"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLag(t *testing.T) {
	var nowUS atomic.Int64
	nowUS.Store(base + 60_000_000) // a minute after event 0
	clock := func() time.Time { return time.UnixMicro(nowUS.Load()) }
	reg := prometheus.NewRegistry()
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 2)), Options{Now: clock, Registerer: reg})
	ctx := ctxT(t, 30*time.Second)

	// Event i has event time base + i ms. Entry 2 of partition 0 holds
	// offsets 5–9 with event 9 first, so that its smallest event time
	// (event 5's) is not its first event's.
	mustAppend(t, b, "metrics", 0, testEvents("e", 0, 5, base), 0)
	second := testEvents("e", 5, 5, base)
	second[0], second[4] = second[4], second[0]
	mustAppend(t, b, "metrics", 0, second, 5)
	mustAppend(t, b, "metrics", 1, testEvents("f", 0, 3, base+2000), 0)

	for _, c := range []struct {
		consumer string
		part     int
		offset   int64
	}{
		{"speed", 0, 7},
		{"lake", 0, 10},
		{"lake", 1, 0},
	} {
		if err := b.Commit(ctx, c.consumer, "metrics", c.part, c.offset, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Register(ctx, "search.sink", "metrics"); err != nil {
		t.Fatal(err)
	}
	// Registering after commits changes nothing.
	if err := b.Register(ctx, "lake", "metrics"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Committed(ctx, "search.sink", "metrics", 0); ok || err != nil {
		t.Fatalf("registered consumer has a commit: ok %v err %v", ok, err)
	}

	secs := func(minTime int64) float64 { return float64(nowUS.Load()-minTime) / 1e6 }
	// Sorted by lag seconds, ties by consumer.
	want := []api.Lag{
		{Consumer: "search.sink", Topic: "metrics", Partition: 0, Offset: 0, EndOffset: 10, Lag: 10, LagSeconds: secs(base)},
		{Consumer: "lake", Topic: "metrics", Partition: 1, Offset: 0, EndOffset: 3, Lag: 3, LagSeconds: secs(base + 2000)},
		{Consumer: "search.sink", Topic: "metrics", Partition: 1, Offset: 0, EndOffset: 3, Lag: 3, LagSeconds: secs(base + 2000)},
		{Consumer: "speed", Topic: "metrics", Partition: 0, Offset: 7, EndOffset: 10, Lag: 3, LagSeconds: secs(base + 5000)},
		{Consumer: "lake", Topic: "metrics", Partition: 0, Offset: 10, EndOffset: 10, Lag: 0, LagSeconds: 0},
	}
	got, err := b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Lag:\n got %+v\nwant %+v", got, want)
	}
	if want[0].LagSeconds != 60 || want[3].LagSeconds != 59.995 {
		t.Fatalf("lag seconds %v %v, want 60 and 59.995", want[0].LagSeconds, want[3].LagSeconds)
	}

	// The JSON of GET /v1/lag.
	js, _ := json.Marshal(got[3])
	if string(js) != `{"consumer":"speed","topic":"metrics","partition":0,"offset":7,"end_offset":10,"lag":3,"lag_seconds":59.995}` {
		t.Fatalf("Lag JSON: %s", js)
	}

	// More appends and commits, a later clock.
	mustAppend(t, b, "metrics", 0, testEvents("e", 10, 2, base), 10)
	if err := b.Commit(ctx, "speed", "metrics", 0, 12, 0); err != nil {
		t.Fatal(err)
	}
	nowUS.Add(1_500_000)
	got, err = b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []api.Lag{
		{Consumer: "search.sink", Topic: "metrics", Partition: 0, Offset: 0, EndOffset: 12, Lag: 12, LagSeconds: 61.5},
		{Consumer: "lake", Topic: "metrics", Partition: 1, Offset: 0, EndOffset: 3, Lag: 3, LagSeconds: 61.498},
		{Consumer: "search.sink", Topic: "metrics", Partition: 1, Offset: 0, EndOffset: 3, Lag: 3, LagSeconds: 61.498},
		{Consumer: "lake", Topic: "metrics", Partition: 0, Offset: 10, EndOffset: 12, Lag: 2, LagSeconds: 61.49},
		{Consumer: "speed", Topic: "metrics", Partition: 0, Offset: 12, EndOffset: 12, Lag: 0, LagSeconds: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Lag after more appends:\n got %+v\nwant %+v", got, want)
	}

	// Metrics: appends counted per partition; lag gauges from Lag.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				values[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				values[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				values[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"lambdaflow_log_appends_total,partition=0,topic=metrics":                         3,
		"lambdaflow_log_events_total,partition=0,topic=metrics":                          12,
		"lambdaflow_log_appends_total,partition=1,topic=metrics":                         1,
		"lambdaflow_log_append_seconds":                                                  4,
		"lambdaflow_consumer_lag_events,consumer=lake,partition=0,topic=metrics":         2,
		"lambdaflow_consumer_lag_seconds,consumer=search.sink,partition=0,topic=metrics": 61.5,
		"lambdaflow_consumer_lag_events,consumer=speed,partition=0,topic=metrics":        0,
	} {
		if values[key] != want {
			t.Errorf("%s = %v, want %v", key, values[key], want)
		}
	}
	if values["lambdaflow_log_bytes_total,partition=0,topic=metrics"] <= 0 {
		t.Errorf("no bytes counted")
	}
}
