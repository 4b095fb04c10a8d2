package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

func str(s string) event.Value  { return event.Value{S: s, Valid: true} }
func i64(i int64) event.Value   { return event.Value{I: i, Valid: true} }
func f64(f float64) event.Value { return event.Value{F: f, Valid: true} }

var null event.Value

// viewTable is a view grouped by region with two aggregates.
func viewTable(name string) sinks.Table {
	return sinks.Table{
		Name: name, View: true,
		Columns: event.Schema{
			{Name: viewrow.ColWindowStart, Type: event.TypeTimestamp, Required: true},
			{Name: viewrow.ColWindowEnd, Type: event.TypeTimestamp, Required: true},
			{Name: "region", Type: event.TypeString, Required: true},
			{Name: "events", Type: event.TypeLong},
			{Name: "avg_cpu", Type: event.TypeDouble},
		},
		Key: []string{"region", viewrow.ColWindowStart},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestTopicUpsertExactValues(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	// Prepare twice is a no-op.
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 3, 1, 12, 30, 0, 123_000_000, time.UTC).UnixMicro()
	rows := sinktest.Rows(
		[]event.Value{i64(ts), str("a"), i64(math.MaxInt64), i64(math.MaxInt32), f64(0.1), i64(1), str("e1")},
		[]event.Value{i64(ts + 1000), str("b ü ✓"), i64(math.MinInt64), i64(math.MinInt32), f64(-1e300), i64(0), str("e2")},
		[]event.Value{i64(-1_000), str(""), null, null, null, null, str("e3")},
	)
	for range 2 { // redelivery changes nothing
		if err := s.Write(ctx, tab, rows); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]event.Value{rows[0].Values, rows[1].Values, rows[2].Values}
	sortRows(tab, want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows:\n got %v\nwant %v", got, want)
	}

	// A redelivered event whose optional fields are now missing clears them.
	upd := sinktest.Rows([]event.Value{i64(ts), str("a2"), null, null, null, null, str("e1")})
	if err := s.Write(ctx, tab, upd); err != nil {
		t.Fatal(err)
	}
	got, err = readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	want[0] = upd[0].Values
	sortRows(tab, want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after update:\n got %v\nwant %v", got, want)
	}
}

func TestTimestampsKeepMilliseconds(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	rows := sinktest.Rows(
		[]event.Value{i64(1_700_000_000_123_456), str("a"), null, null, null, null, str("e1")},
		[]event.Value{i64(-1_500), str("a"), null, null, null, null, str("e2")},
	)
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if got[0][0].I != 1_700_000_000_123_000 || got[1][0].I != -2_000 {
		t.Fatalf("timestamps %d, %d; want 1700000000123000, -2000 (floored to ms)", got[0][0].I, got[1][0].I)
	}
}

func TestViewTableKeyAndUpsert(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := viewTable("cpu_by_region")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	sess, _ := s.conn()
	cols, err := s.columns(ctx, sess, tab.Name)
	if err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]string{"region": "partition_key", "window_start": "clustering", "window_end": "regular", "events": "regular"} {
		if cols[name].kind != kind {
			t.Errorf("column %s is %q, want %q", name, cols[name].kind, kind)
		}
	}

	w := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).UnixMicro()
	m := time.Minute.Microseconds()
	var rows []sinks.Row
	var want [][]event.Value
	for r := range 3 {
		for k := range 250 { // more than one batch per partition
			v := []event.Value{i64(w + int64(k)*m), i64(w + int64(k+1)*m), str(fmt.Sprintf("r%d", r)), i64(int64(k)), f64(float64(k) / 3)}
			rows = append(rows, sinks.Row{Values: v, Time: v[0].I})
			want = append(want, v)
		}
	}
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	// A correction for one window, twice in one call: the last one wins.
	fix1 := []event.Value{i64(w), i64(w + m), str("r1"), i64(1000), null}
	fix2 := []event.Value{i64(w), i64(w + m), str("r1"), i64(999), f64(2.5)}
	if err := s.Write(ctx, tab, sinktest.Rows(fix2, fix1, fix2)); err != nil {
		t.Fatal(err)
	}
	want[250] = fix2
	sortRows(tab, want)
	got, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d rows, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b [][]event.Value) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestViewWithoutGroupBy(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := sinks.Table{
		Name: "totals", View: true,
		Columns: event.Schema{
			{Name: viewrow.ColWindowStart, Type: event.TypeTimestamp, Required: true},
			{Name: viewrow.ColWindowEnd, Type: event.TypeTimestamp, Required: true},
			{Name: "events", Type: event.TypeLong},
		},
		Key: []string{viewrow.ColWindowStart},
	}
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	rows := sinktest.Rows([]event.Value{i64(60e6), i64(120e6), i64(7)}, []event.Value{i64(0), i64(60e6), i64(3)})
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
}

func TestTTL(t *testing.T) {
	const ttl = time.Hour
	s := newTestSink(t, func(sp *pipelines.Sink) { sp.Config.(*Config).TTL = pipelines.Duration(ttl) })
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	rows := sinktest.Rows([]event.Value{i64(1), str("a"), i64(5), null, null, null, str("e1")})
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	sess, _ := s.conn()
	var got int
	q := fmt.Sprintf(`SELECT TTL("host") FROM %s.%s WHERE "_id" = 'e1'`, quote(s.keyspace), quote(tab.Name))
	if err := sess.Query(q).WithContext(ctx).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got > int(ttl/time.Second) {
		t.Fatalf("TTL(host) = %d, want in (0, %d]", got, int(ttl/time.Second))
	}
}

func TestNewNullableFieldAddsColumn(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	old := sinktest.Rows([]event.Value{i64(1000), str("a"), null, null, null, null, str("e1")})
	if err := s.Write(ctx, tab, old); err != nil {
		t.Fatal(err)
	}

	// The topic gains a field; TopicTable keeps _id last.
	grown := sinks.TopicTable(&pipelines.Topic{Name: "metrics", Schema: append(
		append(event.Schema(nil), tab.Columns[:len(tab.Columns)-1]...),
		event.Field{Name: "zone", Type: event.TypeString})})
	if err := s.Prepare(ctx, grown); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, grown); err != nil { // again: nothing left to add
		t.Fatal(err)
	}
	nw := sinktest.Rows([]event.Value{i64(2000), str("b"), null, null, null, null, str("z1"), str("e2")})
	if err := s.Write(ctx, grown, nw); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, s, grown)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]event.Value{
		{i64(1000), str("a"), null, null, null, null, null, str("e1")},
		nw[0].Values,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}

	// A field whose type changed cannot be altered in place.
	changed := sinktest.AllTypesTopic("metrics")
	changed.Columns[2].Type = event.TypeString
	if err := s.Prepare(ctx, changed); !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Prepare with a changed type: %v, want ErrPermanent", err)
	}
}

func TestPoisonRowsAreRowErrors(t *testing.T) {
	s := newTestSink(t, nil)
	ctx := ctxT(t)
	tab := viewTable("v")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	// Same partition, so the bad rows share batches with good ones and
	// the server's refusal must be narrowed down to them.
	var rows []sinks.Row
	bad := map[int]string{}
	for k := range 20 {
		v := []event.Value{i64(int64(k) * 60e6), i64(int64(k+1) * 60e6), str("eu"), i64(int64(k)), f64(1)}
		switch k {
		case 3:
			v[2] = str("eu\xff\xfe") // invalid UTF-8: refused by the server
			bad[k] = "utf-8"
		case 7:
			v[2] = null // null key: refused before sending
			bad[k] = "null"
		}
		rows = append(rows, sinks.Row{Values: v, Time: v[0].I})
	}
	// An int out of range is refused before sending.
	itab := sinktest.AllTypesTopic("t")
	if err := s.Prepare(ctx, itab); err != nil {
		t.Fatal(err)
	}
	irows := sinktest.Rows(
		[]event.Value{i64(1), str("a"), null, i64(math.MaxInt32 + 1), null, null, str("e1")},
		[]event.Value{i64(1), str("a"), null, i64(5), null, null, str("e2")},
	)

	err := s.Write(ctx, tab, rows)
	var re sinks.RowErrors
	if !errors.As(err, &re) {
		t.Fatalf("Write: %v, want RowErrors", err)
	}
	if len(re) != 2 || re[0].Index != 3 || re[1].Index != 7 {
		t.Fatalf("RowErrors = %v, want rows 3 and 7", re)
	}
	t.Logf("row errors: %v", re)
	got, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 18 {
		t.Fatalf("%d rows written, want 18", len(got))
	}

	err = s.Write(ctx, itab, irows)
	if !errors.As(err, &re) || len(re) != 1 || re[0].Index != 0 {
		t.Fatalf("Write with an int out of range: %v, want RowErrors for row 0", err)
	}
	if got, _ := readAll(ctx, s, itab); len(got) != 1 {
		t.Fatalf("%d rows written, want 1", len(got))
	}

	// Topic rows are packed ten partitions to a batch: a refused one
	// spoils a batch of other partitions, and only it is reported.
	var trows []sinks.Row
	for i := range 35 {
		host := "h"
		if i == 22 {
			host = "h\xc3\x28"
		}
		trows = append(trows, sinktest.Rows([]event.Value{i64(1), str(host), null, null, null, null, str(fmt.Sprintf("t%d", i))})...)
	}
	sess, _ := s.conn()
	var parts [][]int
	args, stmts := make([][]any, 12), make([]string, 12)
	for i := range 12 {
		parts = append(parts, []int{i})
		args[i], _ = bindRow(itab, trows[i].Values)
		stmts[i] = insertCQL(s.keyspace, itab, 0)
	}
	if units := s.pack(sess, stmts, parts, trows, args); len(units) != 2 || len(units[0]) != 10 {
		t.Errorf("12 single-row partitions packed as %v, want batches of 10 and 2", units)
	}
	err = s.Write(ctx, itab, trows)
	if !errors.As(err, &re) || len(re) != 1 || re[0].Index != 22 {
		t.Fatalf("Write with invalid UTF-8 in row 22: %v, want RowErrors for row 22", err)
	}
	if got, _ := readAll(ctx, s, itab); len(got) != 1+34 {
		t.Fatalf("%d rows written, want 35", len(got))
	}
}

func TestCreateFalseMissingTable(t *testing.T) {
	s := newTestSink(t, func(sp *pipelines.Sink) { sp.Create = false })
	err := s.Prepare(ctxT(t), sinktest.AllTypesTopic("nope"))
	if err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Prepare of a missing table without create: %v, want a transient error", err)
	}
}

func TestDownIsTransient(t *testing.T) {
	testHosts(t)
	s, err := New(context.Background(), &pipelines.Sink{Name: "down", Config: &Config{Hosts: []string{"127.0.0.1:1"}, Keyspace: "x"}, Create: true}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	if err := s.Ping(ctx); err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Ping: %v, want a transient error", err)
	}
	err = s.Write(ctx, sinktest.AllTypesTopic("t"), sinktest.Rows([]event.Value{i64(1), str("a"), null, null, null, null, str("e1")}))
	if err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Write: %v, want a transient error", err)
	}
}

func TestNewRejectsBadSpec(t *testing.T) {
	for _, sp := range []pipelines.Sink{
		{Name: "a", Config: &Config{Keyspace: "k"}},
		{Name: "b", Config: &Config{Hosts: []string{"h"}}},
		{Name: "c", Config: &Config{Hosts: []string{"h"}, Keyspace: "k", Consistency: "most"}},
		{Name: "d", Config: &Config{Hosts: []string{"h"}, Keyspace: "k", TTL: pipelines.Duration(time.Millisecond)}},
		{Name: "e", Config: &struct{ DSN string }{}}, // another kind's configuration
	} {
		if _, err := New(context.Background(), &sp, nil); !errors.Is(err, sinks.ErrPermanent) {
			t.Errorf("New(%+v) = %v, want ErrPermanent", sp, err)
		}
	}
}
