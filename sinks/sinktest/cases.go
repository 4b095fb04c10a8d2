package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// testTopicRows: a topic with every field type, nulls included, lands
// exactly, whether events were appended before the sink started or while it
// runs.
func testTopicRows(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	events := genEvents("a", 0, 300)
	e.appendByPartition(topicName, events[:150])
	rn := e.start(tg)
	e.appendByPartition(topicName, events[150:])
	e.waitCommitted(h.Timeout)
	table, _ := e.tables()
	e.waitRows(tg, table, h.expected(table, events))
	rn.stop(t)
	if got := MetricSum(t, rn.reg, "lambdaflow_sink_rows_written_total"); got != 300 {
		t.Errorf("lambdaflow_sink_rows_written_total = %v, want 300", got)
	}
	e.checkLag()
}

// testViewRows: view rows land keyed by group-by fields and window_start; a
// later row for the same window (a batch correction) overwrites the earlier.
func testViewRows(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	rows := genViewRows(8, true)
	e.appendViewRows(rows)
	rn := e.start(tg)
	e.waitCommitted(h.Timeout)
	_, view := e.tables()
	want := h.expected(view, rows)
	if len(want) != 8*6 {
		t.Fatalf("suite bug: %d distinct view keys, want %d", len(want), 8*6)
	}
	e.waitRows(tg, view, want)
	rn.stop(t)
}

// testRedelivery: rewinding the sink's consumer to 0 delivers everything
// again, through a new target as after a restart, and changes nothing.
func testRedelivery(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	events := genEvents("r", 0, 200)
	rows := genViewRows(4, true)
	e.appendByPartition(topicName, events)
	e.appendViewRows(rows)
	rn := e.start(tg)
	e.waitCommitted(h.Timeout)
	table, view := e.tables()
	wantTopic, wantView := h.expected(table, events), h.expected(view, rows)
	e.waitRows(tg, table, wantTopic)
	e.waitRows(tg, view, wantView)
	rn.stop(t)
	tg.Close()

	e.resetOffsets()
	tg = e.target()
	rn = e.start(tg)
	e.waitCommitted(h.Timeout)
	rn.stop(t)
	if got, want := MetricSum(t, rn.reg, "lambdaflow_sink_rows_written_total"), float64(len(events)+len(rows)); got != want {
		t.Errorf("second delivery wrote %v rows, want %v (all of them again)", got, want)
	}
	e.checkRows(tg, table, wantTopic)
	e.checkRows(tg, view, wantView)
}

// testOutage: the engine stops while events stream in; the sink turns
// unhealthy, retries, and after the restart holds every row exactly once,
// with no lag left.
func testOutage(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	rn := e.start(tg)
	events := genEvents("o", 0, 600)
	e.appendByPartition(topicName, events[:100])
	e.waitCommitted(h.Timeout)

	restart := h.Outage(t)
	restarted := false
	defer func() {
		if !restarted {
			restart()
		}
	}()
	for i := 100; i < 300; i += 20 {
		e.appendByPartition(topicName, events[i:i+20])
	}
	testenv.CheckFor(t, h.Timeout, 25*time.Millisecond, func() error {
		if up := MetricSum(t, rn.reg, "lambdaflow_sink_up"); up != 0 {
			return fmt.Errorf("lambdaflow_sink_up = %v during the outage, want 0", up)
		}
		return nil
	})
	err := rn.r.Health(context.Background())
	if err == nil {
		t.Errorf("Health() = nil during the outage")
	} else if want := sinkName; !strings.Contains(err.Error(), want) {
		t.Errorf("Health() = %q, want it to name the sink %q", err, want)
	}
	restart()
	restarted = true
	e.appendByPartition(topicName, events[300:])

	e.waitCommitted(h.Timeout)
	table, _ := e.tables()
	e.waitRows(tg, table, h.expected(table, events))
	testenv.CheckFor(t, h.Timeout, 25*time.Millisecond, func() error { return rn.r.Health(context.Background()) })
	if up := MetricSum(t, rn.reg, "lambdaflow_sink_up"); up != 1 {
		t.Errorf("lambdaflow_sink_up = %v after recovery, want 1", up)
	}
	if r := MetricSum(t, rn.reg, "lambdaflow_sink_retries_total"); r == 0 {
		t.Errorf("lambdaflow_sink_retries_total = 0 after an outage")
	}
	rn.stop(t)
	e.checkLag()
}

// testPoison: one record the target rejects goes to the dead-letter topic
// with its reason while every other row lands; replay before the fix sends
// it back with the new error, replay after the fix writes it.
func testPoison(t *testing.T, h Harness) {
	ft, poison := h.Poison(t)
	poison.Valid = true
	schema := eventsTopic().Schema
	col := -1
	for i, f := range schema {
		if f.Type == ft && !f.Required {
			col = i
			break
		}
	}
	if col < 0 {
		t.Fatalf("Harness.Poison: type %s has no nullable column in the suite's topic", ft)
	}
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	events := genEvents("p", 0, 150)
	const bad = 37
	events[bad].Values[col] = poison
	// Its offset: its position among the events of its partition.
	parts := e.topic(topicName).Partitions
	badPart, badOff := partitionOf(events[bad], parts), int64(0)
	for _, ev := range events[:bad] {
		if partitionOf(ev, parts) == badPart {
			badOff++
		}
	}
	e.appendByPartition(topicName, events)
	rn := e.start(tg)
	e.waitCommitted(h.Timeout)
	table, _ := e.tables()
	good := append(append([]event.Event(nil), events[:bad]...), events[bad+1:]...)
	e.waitRows(tg, table, h.expected(table, good))
	if n := MetricSum(t, rn.reg, "lambdaflow_sink_dead_letters_total"); n != 1 {
		t.Errorf("lambdaflow_sink_dead_letters_total = %v, want 1", n)
	}
	rn.stop(t)

	dlq := e.deadLetters()
	if len(dlq) != 1 {
		t.Fatalf("dead-letter topic holds %d events, want 1", len(dlq))
	}
	r, _ := e.newRunner(tg)
	dls, err := r.DeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	if len(dls) != 1 {
		t.Fatalf("DeadLetters returned %d, want 1", len(dls))
	}
	checkDeadLetter(t, dls[0], table, events[bad], badPart, badOff)

	// Replay before the fix: rejected again, back in the topic.
	replayed, failed, err := r.Replay(context.Background())
	if err != nil || replayed != 0 || failed != 1 {
		t.Fatalf("Replay before the fix = %d replayed, %d failed, %v; want 0, 1, nil", replayed, failed, err)
	}
	dls, err = r.DeadLetters(context.Background(), 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters after a failed replay = %d, %v; want 1", len(dls), err)
	}
	checkDeadLetter(t, dls[0], table, events[bad], badPart, badOff)

	// The fix, then replay.
	fixedEvent := events[bad]
	if h.Fix != nil {
		h.Fix(t, unwrap(tg), e.spec, table)
	} else {
		clean := cleanValue(ft)
		fixedEvent.Values = append([]event.Value(nil), fixedEvent.Values...)
		fixedEvent.Values[col] = clean
		r, _ = e.newRunner(&fixed{Target: unwrap(tg), col: col, idCol: table.Columns.Index(event.ColID), id: events[bad].ID, clean: clean})
	}
	replayed, failed, err = r.Replay(context.Background())
	if err != nil || replayed != 1 || failed != 0 {
		t.Fatalf("Replay after the fix = %d replayed, %d failed, %v; want 1, 0, nil", replayed, failed, err)
	}
	all := append(good, fixedEvent)
	e.checkRows(tg, table, h.expected(table, all))
	if dls, err := r.DeadLetters(context.Background(), 10); err != nil || len(dls) != 0 {
		t.Errorf("DeadLetters after the replay = %v, %v; want none", dls, err)
	}
	replayed, failed, err = r.Replay(context.Background())
	if err != nil || replayed != 0 || failed != 0 {
		t.Errorf("second Replay = %d, %d, %v; want 0, 0, nil", replayed, failed, err)
	}
}

func checkDeadLetter(t *testing.T, dl api.DeadLetter, table sinks.Table, ev event.Event, part int, off int64) {
	t.Helper()
	if dl.Source != topicName || dl.Partition != part || dl.Offset != off {
		t.Errorf("dead letter from %s/%d@%d, want %s/%d@%d", dl.Source, dl.Partition, dl.Offset, topicName, part, off)
	}
	if dl.Error == "" {
		t.Errorf("dead letter without an error")
	}
	if dl.Time.IsZero() {
		t.Errorf("dead letter without a time")
	}
	var rec map[string]any
	if err := json.Unmarshal(dl.Record, &rec); err != nil {
		t.Fatalf("dead letter record %s: %v", dl.Record, err)
	}
	if rec[event.ColID] != ev.ID {
		t.Errorf("dead letter record has _id %v, want %q", rec[event.ColID], ev.ID)
	}
	for _, c := range table.Columns {
		if _, ok := rec[c.Name]; !ok {
			t.Errorf("dead letter record lacks column %q: %s", c.Name, dl.Record)
		}
	}
}

// fixed is a target after the fix: it replaces the poison value of the
// poison record (found by _id: the value itself may not survive the dead
// letter's JSON, e.g. invalid UTF-8).
type fixed struct {
	sinks.Target
	col, idCol int
	id         string
	clean      event.Value
}

func (f *fixed) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	out := make([]sinks.Row, len(rows))
	for i, r := range rows {
		out[i] = r
		if f.idCol < len(r.Values) && f.col < len(r.Values) && r.Values[f.idCol].S == f.id {
			out[i].Values = append([]event.Value(nil), r.Values...)
			out[i].Values[f.col] = f.clean
		}
	}
	return f.Target.Write(ctx, t, out)
}

func cleanValue(ft event.FieldType) event.Value {
	switch ft {
	case event.TypeString:
		return event.Value{S: "fixed", Valid: true}
	case event.TypeDouble:
		return event.Value{F: 1.25, Valid: true}
	default:
		return event.Value{I: 1, Valid: true}
	}
}

// testNewField: a nullable field added to the topic adds its column (Prepare
// runs again); rows written before keep nulls in it.
func testNewField(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	rn := e.start(tg)
	old := genEvents("f", 0, 100)
	e.appendByPartition(topicName, old)
	e.waitCommitted(h.Timeout)
	table, _ := e.tables()
	e.waitRows(tg, table, h.expected(table, old))
	rn.stop(t)
	tg.Close()

	tp := e.p.TopicByName(topicName)
	tp.Schema = append(tp.Schema,
		event.Field{Name: "note", Type: event.TypeString},
		event.Field{Name: "score", Type: event.TypeDouble})
	e.reopen()
	newer := genEvents("f", 100, 100)
	for i := range newer {
		note := event.Value{S: fmt.Sprintf("note %d", i), Valid: i%3 != 0}
		newer[i].Values = append(newer[i].Values, note, event.Value{F: float64(i) / 8, Valid: true})
	}
	e.appendByPartition(topicName, newer)
	tg = e.target()
	rn = e.start(tg)
	e.waitCommitted(h.Timeout)
	table, _ = e.tables()
	e.waitRows(tg, table, h.expected(table, append(old, newer...)))
	rn.stop(t)
}

// MetricSum sums every series of the metric family name in reg: counter
// and gauge values, and the sample counts of histograms.
func MetricSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
