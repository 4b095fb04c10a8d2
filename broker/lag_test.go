package broker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/prometheus/client_golang/prometheus"
)

// appendedAt reads the time JetStream stored entry seq of a partition at,
// UTC µs, straight from the stream.
func appendedAt(t *testing.T, b *Broker, topic string, part int, seq uint64) int64 {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	st, err := b.js.Stream(ctx, fmt.Sprintf("LF_%s_%d", topic, part))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Time.UnixMicro()
}

func TestLag(t *testing.T) {
	var nowUS atomic.Int64
	clock := func() time.Time { return time.UnixMicro(nowUS.Load()) }
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	b := openBroker(t, testPipeline(dir, testTopic("metrics", 2)), Options{Now: clock, Registerer: reg})
	ctx := ctxT(t, 30*time.Second)

	// Event i has event time base + i ms, long before the appends. Entry 2
	// of partition 0 holds offsets 5–9 with event 9 first, so that its
	// smallest event time (event 5's) is not its first event's.
	mustAppend(t, b, "metrics", 0, testEvents("e", 0, 5, base), 0)
	second := testEvents("e", 5, 5, base)
	second[0], second[4] = second[4], second[0]
	mustAppend(t, b, "metrics", 0, second, 5)
	mustAppend(t, b, "metrics", 1, testEvents("f", 0, 3, base+2000), 0)
	mustAppend(t, b, "metrics", 1, testEvents("f", 3, 2, base+2000), 3)
	appended := map[[2]int]int64{
		{0, 1}: appendedAt(t, b, "metrics", 0, 1),
		{0, 2}: appendedAt(t, b, "metrics", 0, 2),
		{1, 1}: appendedAt(t, b, "metrics", 1, 1),
		{1, 2}: appendedAt(t, b, "metrics", 1, 2),
	}
	t0 := appended[[2]int{1, 2}] + 60_000_000 // a minute after the last append
	nowUS.Store(t0)

	for _, c := range []struct {
		consumer string
		part     int
		offset   int64
	}{
		{"speed", 0, 7},
		{"lake", 0, 10},
		{"lake", 1, 0},
		{"rewind", 0, 8},
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

	// Reports are written once a second: until then, read = committed.
	b.Progress("lake", "metrics", 1, 4)
	b.Progress("speed", "metrics", 0, 10)
	b.Progress("stale", "metrics", 0, 3)
	got, err := b.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		if l.ReadOffset != l.Offset || l.ReadLag != l.Lag || l.ReadLagSeconds != l.LagSeconds {
			t.Errorf("%s/%d before any report is written: read %d/%d/%v, committed %d/%d/%v",
				l.Consumer, l.Partition, l.ReadOffset, l.ReadLag, l.ReadLagSeconds, l.Offset, l.Lag, l.LagSeconds)
		}
	}
	b.writeProgress(ctx) // at t0
	// A second later: "stale" commits past its report (the commit says
	// where it is); "rewind" reports a position behind its older commit
	// (it went back, the report says where it is).
	nowUS.Store(t0 + 1_000_000)
	if err := b.Commit(ctx, "stale", "metrics", 0, 9, 0); err != nil {
		t.Fatal(err)
	}
	b.Progress("rewind", "metrics", 0, 6)
	b.writeProgress(ctx)

	now := nowUS.Load()
	since := func(part int, seq int) float64 { return float64(now-appended[[2]int{part, seq}]) / 1e6 }
	age := func(minTime int64) float64 { return float64(now-minTime) / 1e6 }
	row := func(consumer string, part int, offset, end int64, seq int, minTime, read int64, readSeq int) api.Lag {
		l := api.Lag{Consumer: consumer, Topic: "metrics", Partition: part, Offset: offset, EndOffset: end, Lag: end - offset,
			ReadOffset: read, ReadLag: end - read}
		if seq > 0 {
			l.LagSeconds, l.EventTimeLagSeconds = since(part, seq), age(minTime)
		}
		if readSeq > 0 {
			l.ReadLagSeconds = since(part, readSeq)
		}
		return l
	}
	// Worst first: by read lag seconds, then lag seconds, then consumer.
	// Entries were appended in the order (0,1), (0,2), (1,1), (1,2).
	want := []api.Lag{
		row("search.sink", 0, 0, 10, 1, base, 0, 1),
		row("rewind", 0, 8, 10, 2, base+5000, 6, 2),
		row("stale", 0, 9, 10, 2, base+5000, 9, 2),
		row("search.sink", 1, 0, 5, 1, base+2000, 0, 1),
		row("lake", 1, 0, 5, 1, base+2000, 4, 2),
		row("speed", 0, 7, 10, 2, base+5000, 10, 0),
		row("lake", 0, 10, 10, 0, 0, 10, 0),
	}
	if got, err = b.Lag(ctx); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Lag:\n got %+v\nwant %+v", got, want)
	}
	// Lag by append time: a minute and a bit, whatever the event times.
	if s := want[5].LagSeconds; s <= 61 || s > 62 {
		t.Fatalf("speed's lag seconds %v, want a minute after its entry's append, plus a second", s)
	}
	if want[5].EventTimeLagSeconds < 1e6 {
		t.Fatalf("event time lag %v: the events are from long ago", want[5].EventTimeLagSeconds)
	}

	// The JSON of GET /v1/lag.
	js, _ := json.Marshal(api.Lag{Consumer: "speed", Topic: "metrics", Partition: 0, Offset: 7, EndOffset: 10, Lag: 3,
		LagSeconds: 61.5, EventTimeLagSeconds: 3600, ReadOffset: 10})
	if string(js) != `{"consumer":"speed","topic":"metrics","partition":0,"offset":7,"end_offset":10,"lag":3,"lag_seconds":61.5,`+
		`"event_time_lag_seconds":3600,"read_offset":10,"read_lag":0,"read_lag_seconds":0}` {
		t.Fatalf("Lag JSON: %s", js)
	}

	// Metrics: appends counted per partition; lag gauges from Lag, five
	// per row.
	values := gather(t, reg)
	for key, want := range map[string]float64{
		"lambdaflow_log_appends_total,partition=0,topic=metrics": 2,
		"lambdaflow_log_events_total,partition=0,topic=metrics":  10,
		"lambdaflow_log_appends_total,partition=1,topic=metrics": 2,
		"lambdaflow_log_append_seconds":                          4,
	} {
		if values[key] != want {
			t.Errorf("%s = %v, want %v", key, values[key], want)
		}
	}
	if values["lambdaflow_log_bytes_total,partition=0,topic=metrics"] <= 0 {
		t.Errorf("no bytes counted")
	}
	series := 0
	for _, l := range want {
		labels := fmt.Sprintf(",consumer=%s,partition=%d,topic=%s", l.Consumer, l.Partition, l.Topic)
		for name, v := range map[string]float64{
			"lambdaflow_consumer_lag_events":             float64(l.Lag),
			"lambdaflow_consumer_lag_seconds":            l.LagSeconds,
			"lambdaflow_consumer_event_time_lag_seconds": l.EventTimeLagSeconds,
			"lambdaflow_consumer_read_lag_events":        float64(l.ReadLag),
			"lambdaflow_consumer_read_lag_seconds":       l.ReadLagSeconds,
		} {
			got, ok := values[name+labels]
			if !ok || got != v {
				t.Errorf("%s%s = %v (present %v), want %v", name, labels, got, ok, v)
			}
			series++
		}
	}
	for k := range values {
		if strings.HasPrefix(k, "lambdaflow_consumer_") {
			series--
		}
	}
	if series != 0 {
		t.Errorf("%d lag series more than the rows' 7 × 5", -series)
	}

	// Close writes the reports not yet written: a broker opened next on the
	// same store sees them.
	b.Progress("lake", "metrics", 1, 5)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := openBroker(t, testPipeline(dir, testTopic("metrics", 2)), Options{Now: clock})
	lag, err := b2.Lag(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lag {
		if l.Consumer == "lake" && l.Partition == 1 && (l.Offset != 0 || l.ReadOffset != 5 || l.ReadLag != 0 || l.ReadLagSeconds != 0) {
			t.Errorf("lake/1 after a restart: %+v, want committed 0, read 5", l)
		}
	}
}

// gather reads a registry's values by "name,label=value,…".
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
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
	return values
}
