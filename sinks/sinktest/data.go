package sinktest

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// eventsTopic has a field of every type; all but the first two are nullable.
func eventsTopic() pipelines.Topic {
	return pipelines.Topic{
		Name: topicName, Partitions: 2, Key: "host", Time: "ts",
		Retention: pipelines.Duration(168 * time.Hour),
		Schema: event.Schema{
			{Name: "ts", Type: event.TypeTimestamp, Required: true},
			{Name: "host", Type: event.TypeString, Required: true},
			{Name: "region", Type: event.TypeString},
			{Name: "cpu", Type: event.TypeDouble},
			{Name: "bytes", Type: event.TypeLong},
			{Name: "cores", Type: event.TypeInt},
			{Name: "up", Type: event.TypeBool},
			{Name: "seen", Type: event.TypeTimestamp},
		},
	}
}

// hostView groups events by host; its aggregates cover every output type.
func hostView() pipelines.View {
	return pipelines.View{
		Name: viewName, From: topicName, GroupBy: []string{"host"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"},
			{Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "bytes", Func: "sum", Field: "bytes"},
			{Name: "max_seen", Func: "max", Field: "seen"},
			{Name: "last_up", Func: "last", Field: "up"},
			{Name: "first_region", Func: "first", Field: "region"},
		},
		Retention: pipelines.Duration(24 * time.Hour),
	}
}

var (
	// Values that catch lossy mappings: extremes, precision, escaping.
	sampleStrings = []string{"eu-west", "", "h\u00e9llo \u2713 \U0001F600", `quote " backslash \ tab	`, "line\nbreak", strings.Repeat("x", 300)}
	sampleDoubles = []float64{0.1, -1.5, 1e300, -2.2250738585072014e-308, 123456789.123456789, 0}
	sampleLongs   = []int64{0, -1, math.MaxInt64, math.MinInt64, 1 << 53, 42}
	sampleInts    = []int64{0, math.MaxInt32, math.MinInt32, 7, -7, 1}
	// Times with microseconds, before 1970, and far ahead.
	sampleTimes = []int64{
		time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC).UnixMicro(),
		-1,
		time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC).UnixMicro(),
		time.Date(2199, 12, 31, 12, 0, 0, 123456000, time.UTC).UnixMicro(),
		0,
		time.Date(2025, 6, 1, 8, 30, 0, 500, time.UTC).UnixMicro(),
	}
)

// baseTime is the event time of the suite's first event.
var baseTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// genEvents makes n events numbered from first, with ids "<prefix>-<i>",
// every optional field null on some of them, of hosts host-0…host-5.
func genEvents(prefix string, first, n int) []event.Event {
	out := make([]event.Event, n)
	for k := range n {
		i := first + k
		ts := baseTime.Add(time.Duration(i)*time.Second + time.Duration(i%1000)*time.Microsecond).UnixMicro()
		v := func(valid bool, val event.Value) event.Value {
			if !valid {
				return event.Value{}
			}
			val.Valid = true
			return val
		}
		var up int64
		if i%2 == 0 {
			up = 1
		}
		out[k] = event.Event{
			ID:   fmt.Sprintf("%s-%d", prefix, i),
			Time: ts,
			Values: []event.Value{
				{I: ts, Valid: true},
				{S: fmt.Sprintf("host-%d", i%6), Valid: true},
				v(i%7 != 3, event.Value{S: sampleStrings[i%len(sampleStrings)]}),
				v(i%5 != 1, event.Value{F: sampleDoubles[i%len(sampleDoubles)] + float64(i)/1024}),
				v(i%4 != 2, event.Value{I: sampleLongs[i%len(sampleLongs)]}),
				v(i%6 != 5, event.Value{I: sampleInts[i%len(sampleInts)]}),
				v(i%3 != 1, event.Value{I: up}),
				v(i%8 != 4, event.Value{I: sampleTimes[i%len(sampleTimes)]}),
			},
		}
	}
	return out
}

// partitionOf is the partition of an event of the suite's topic, by its key
// field host, as ingest places it (event.EventPartition).
func partitionOf(ev event.Event, partitions int) int {
	return event.EventPartition(&ev, 1, event.TypeString, partitions)
}

// appendByPartition appends events to topic, each to its key's partition.
func (e *env) appendByPartition(topic string, events []event.Event) {
	e.t.Helper()
	parts := max(e.topic(topic).Partitions, 1)
	byPart := make([][]event.Event, parts)
	for _, ev := range events {
		p := partitionOf(ev, parts)
		byPart[p] = append(byPart[p], ev)
	}
	for p, evs := range byPart {
		if len(evs) > 0 {
			e.append(topic, p, evs)
		}
	}
}

// genViewRows makes final view rows for hosts × windows, laid out as the
// view's topic holds them; rows for the same key appear twice when
// corrections is set, the later one (a batch-layer correction) with other
// aggregates.
func genViewRows(windows int, corrections bool) []event.Event {
	var out []event.Event
	for w := range windows {
		for h := range 6 {
			out = append(out, flagged(viewRow(w, h, 0), true, false))
		}
	}
	if corrections {
		for w := 0; w < windows; w += 2 {
			for h := range 6 {
				out = append(out, flagged(viewRow(w, h, 1), true, false))
			}
		}
	}
	return out
}

// viewRow is the row of window w (minutes from baseTime) of host-h, its
// values varying with gen, in ViewSchema order.
func viewRow(w, h int, gen int64) event.Event {
	start := baseTime.Add(time.Duration(w) * time.Minute).UnixMicro()
	end := start + time.Minute.Microseconds()
	null := (w+h)%5 == 0
	opt := func(val event.Value) event.Value {
		if null {
			return event.Value{}
		}
		val.Valid = true
		return val
	}
	return event.Event{
		ID:   fmt.Sprintf("w%d-h%d-g%d", w, h, gen),
		Time: start,
		Values: []event.Value{
			{I: start, Valid: true},
			{I: end, Valid: true},
			{S: fmt.Sprintf("host-%d", h), Valid: true},
			{I: int64(w*10+h) + gen*1000, Valid: true},
			opt(event.Value{F: float64(w) + float64(h)/3 + float64(gen)}),
			opt(event.Value{I: sampleLongs[(w+h)%len(sampleLongs)] - gen}),
			opt(event.Value{I: sampleTimes[(w+h)%len(sampleTimes)] + gen}),
			opt(event.Value{I: int64((w + h + int(gen)) % 2)}),
			opt(event.Value{S: sampleStrings[(w+h+int(gen))%len(sampleStrings)]}),
		},
	}
}

// flagged returns the row ev with final and _deleted set, as the view's
// topic carries them (viewrow.TopicSchema): an open window's row, a final
// one, or a tombstone (which keeps only the key's values).
func flagged(ev event.Event, final, deleted bool) event.Event {
	b := func(x bool) event.Value {
		if x {
			return event.Value{I: 1, Valid: true}
		}
		return event.Value{Valid: true}
	}
	vals := append([]event.Value(nil), ev.Values...)
	if deleted {
		for i := 3; i < len(vals); i++ { // the aggregates
			vals[i] = event.Value{}
		}
	}
	ev.Values = append(vals, b(final), b(deleted))
	ev.ID += fmt.Sprintf("-final=%t-deleted=%t", final, deleted)
	return ev
}

// appendViewRows appends view rows, each group to the partition of its host,
// so that a correction follows the row it corrects.
func (e *env) appendViewRows(rows []event.Event) {
	e.t.Helper()
	parts := max(e.topic(viewName).Partitions, 1)
	byPart := make([][]event.Event, parts)
	for _, ev := range rows {
		var h int
		for _, c := range ev.Values[2].S {
			h = h*31 + int(c)
		}
		p := max(h, -h) % parts
		byPart[p] = append(byPart[p], ev)
	}
	for p, evs := range byPart {
		if len(evs) > 0 {
			e.append(viewName, p, evs)
		}
	}
}

// expected turns source events into the rows a table must hold: for a topic
// the fields plus _id, for a view its values and final (true unless the
// event says false); later events win for a key, and a view's tombstone
// removes its key.
func (h *Harness) expected(table sinks.Table, events []event.Event) map[string]map[string]any {
	out := make(map[string]map[string]any, len(events))
	for _, ev := range events {
		row := make(map[string]any, len(table.Columns))
		deleted := false
		for i, c := range table.Columns {
			var v event.Value
			switch {
			case c.Name == event.ColID && !table.View:
				v = event.Value{S: ev.ID, Valid: true}
			case table.View && c.Name == viewrow.ColFinal:
				var final bool
				final, deleted = viewrow.Flags(ev.Values, i)
				v = event.Value{Valid: true}
				if final {
					v.I = 1
				}
			case i < len(ev.Values):
				v = ev.Values[i]
			}
			row[c.Name] = h.goValue(c.Type, v)
		}
		if deleted {
			delete(out, rowKey(table, row))
			continue
		}
		out[rowKey(table, row)] = row
	}
	return out
}

// goValue is a log value as ReadAll must return it: event.GoValue, with times
// truncated to the engine's precision.
func (h *Harness) goValue(t event.FieldType, v event.Value) any {
	g := event.GoValue(t, v)
	if tm, ok := g.(time.Time); ok {
		return tm.Truncate(h.TimePrecision)
	}
	return g
}

// rowKey is the primary key of a row, as text.
func rowKey(table sinks.Table, row map[string]any) string {
	var b strings.Builder
	for _, k := range table.Key {
		fmt.Fprintf(&b, "%s=%v|", k, row[k])
	}
	return b.String()
}

// normalise maps the types a harness may return onto the suite's.
func normalise(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case time.Time:
		return x.UTC()
	case *string:
		if x == nil {
			return nil
		}
		return *x
	case []byte:
		return string(x)
	}
	return v
}

// readRows reads table through the harness and keys its rows, failing on a
// key held twice.
func (e *env) readRows(tg sinks.Target, table sinks.Table) map[string]map[string]any {
	e.t.Helper()
	out, dup := keyRows(table, e.h.ReadAll(e.t, unwrap(tg), e.spec, table))
	if dup != "" {
		e.t.Errorf("table %s holds key %s twice", table.Name, dup)
	}
	return out
}

// keyRows normalises the rows a harness read and keys them; dup is a key
// held twice, if any.
func keyRows(table sinks.Table, rows []map[string]any) (out map[string]map[string]any, dup string) {
	out = make(map[string]map[string]any, len(rows))
	for _, r := range rows {
		n := make(map[string]any, len(r))
		for k, v := range r {
			n[k] = normalise(v)
		}
		k := rowKey(table, n)
		if _, ok := out[k]; ok {
			dup = k
		}
		out[k] = n
	}
	return out, dup
}

// diffRows returns the differences between want and got, at most 10.
func diffRows(table sinks.Table, want, got map[string]map[string]any) []string {
	var diffs []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("missing row %s", k))
			continue
		}
		for _, c := range table.Columns {
			w, gv := want[k][c.Name], g[c.Name]
			if !equalValue(w, gv) {
				diffs = append(diffs, fmt.Sprintf("row %s column %s: got %#v (%T), want %#v (%T)", k, c.Name, gv, gv, w, w))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected row %s: %v", k, got[k]))
		}
	}
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("… and %d more", len(diffs)-10))
	}
	return diffs
}

func equalValue(want, got any) bool {
	if wt, ok := want.(time.Time); ok {
		gt, ok := got.(time.Time)
		return ok && wt.Equal(gt)
	}
	return reflect.DeepEqual(want, got)
}

// checkRows fails t unless table holds exactly want.
func (e *env) checkRows(tg sinks.Target, table sinks.Table, want map[string]map[string]any) {
	e.t.Helper()
	got := e.readRows(tg, table)
	if diffs := diffRows(table, want, got); len(diffs) > 0 {
		e.t.Errorf("table %s: %d rows, want %d:\n  %s", table.Name, len(got), len(want), strings.Join(diffs, "\n  "))
	}
}

// waitExactly waits until table holds exactly want (rows may also have to
// go).
func (e *env) waitExactly(tg sinks.Target, table sinks.Table, want map[string]map[string]any) {
	e.t.Helper()
	testenv.CheckFor(e.t, e.h.Timeout, 25*time.Millisecond, func() error {
		got, dup := keyRows(table, e.h.ReadAll(e.t, unwrap(tg), e.spec, table))
		if dup != "" {
			return fmt.Errorf("table %s holds key %s twice", table.Name, dup)
		}
		if diffs := diffRows(table, want, got); len(diffs) > 0 {
			return fmt.Errorf("table %s: %d rows, want %d:\n  %s", table.Name, len(got), len(want), strings.Join(diffs, "\n  "))
		}
		return nil
	})
}

// waitRows waits until table holds exactly want, then checks it once more.
func (e *env) waitRows(tg sinks.Target, table sinks.Table, want map[string]map[string]any) {
	e.t.Helper()
	testenv.CheckFor(e.t, e.h.Timeout, 25*time.Millisecond, func() error {
		got := e.h.ReadAll(e.t, unwrap(tg), e.spec, table)
		if len(got) < len(want) {
			return fmt.Errorf("table %s has %d rows, want %d", table.Name, len(got), len(want))
		}
		return nil
	})
	e.checkRows(tg, table, want)
}

// tables returns the sink's tables: the topic's and the view's.
func (e *env) tables() (topic, view sinks.Table) {
	return sinks.TopicTable(e.p.TopicByName(topicName)),
		sinks.ViewTable(e.p.ViewByName(viewName), e.p.TopicByName(topicName))
}
