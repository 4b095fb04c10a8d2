package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

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

func viewTable(name string) sinks.Table {
	return sinks.Table{
		Name: name, View: true,
		Columns: event.Schema{
			{Name: viewrow.ColWindowStart, Type: event.TypeTimestamp, Required: true},
			{Name: viewrow.ColWindowEnd, Type: event.TypeTimestamp, Required: true},
			{Name: "region", Type: event.TypeString},
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

// want turns rows into what readAll returns, keyed by document _id.
func want(t sinks.Table, rows []sinks.Row) map[string]map[string]any {
	enc, _ := newEncoder(t)
	out := map[string]map[string]any{}
	for _, r := range rows {
		d, err := enc.doc(r)
		if err != nil {
			panic(err)
		}
		m := map[string]any{}
		for i, c := range t.Columns {
			m[c.Name] = event.GoValue(c.Type, r.Values[i])
		}
		out[d.id] = m
	}
	return out
}

func byID(t *testing.T, docs []readDoc) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range docs {
		if _, dup := out[d.ID]; dup {
			t.Errorf("_id %s held twice", d.ID)
		}
		out[d.ID] = d.Values
	}
	return out
}

func TestTopicUpsertExactValues(t *testing.T) {
	s := newTestSink(t, "", nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	for range 2 { // Prepare is idempotent
		if err := s.Prepare(ctx, tab); err != nil {
			t.Fatal(err)
		}
	}
	ts := time.Date(2024, 3, 1, 12, 30, 0, 123_456_000, time.UTC).UnixMicro()
	rows := sinktest.Rows(
		[]event.Value{i64(ts), str("a"), i64(math.MaxInt64), i64(math.MaxInt32), f64(0.1), i64(1), str("e1")},
		[]event.Value{i64(ts + 1), str("b \"ü\" \\ ✓\n\x01"), i64(math.MinInt64), i64(math.MinInt32), f64(-2.2250738585072014e-308), i64(0), str("e2")},
		[]event.Value{i64(-1), str(""), null, null, null, null, str("e/3 ?#%")},
	)
	for range 2 { // redelivery changes nothing
		if err := s.Write(ctx, tab, rows); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := byID(t, docs), want(tab, rows); !reflect.DeepEqual(got, w) {
		t.Fatalf("documents:\n got %v\nwant %v", got, w)
	}
	for _, d := range docs {
		if d.Index != s.spec.Config.(*Config).Index[:len(s.spec.Config.(*Config).Index)-len("{name}")]+"metrics" {
			t.Errorf("document in index %s", d.Index)
		}
	}

	// The mapping comes from the schema, _id stays out of it.
	types := fieldTypes(t, s, s.pattern.wildcard(tab.Name))
	wantTypes := map[string]string{"host": "keyword", "bytes": "long", "port": "integer", "cpu": "double", "up": "boolean", "ts": "date"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("mapping %v, want %v", types, wantTypes)
	}

	// A redelivered event whose optional fields are now missing loses them.
	upd := sinktest.Rows([]event.Value{i64(ts), str("a2"), null, null, null, null, str("e1")})
	if err := s.Write(ctx, tab, upd); err != nil {
		t.Fatal(err)
	}
	docs, err = readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if got := byID(t, docs)["e1"]; !reflect.DeepEqual(got, want(tab, upd)["e1"]) {
		t.Fatalf("after update: %v", got)
	}
}

func TestDatePatternIndices(t *testing.T) {
	s := newTestSink(t, "{name}-{yyyy.MM.dd}", nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	d1 := time.Date(2024, 3, 1, 23, 59, 59, 999_999_000, time.UTC).UnixMicro()
	d2 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC).UnixMicro()
	rows := sinktest.Rows(
		[]event.Value{i64(d1), str("a"), i64(1), null, null, null, str("e1")},
		[]event.Value{i64(d2), str("b"), i64(2), null, null, null, str("e2")},
	)
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	docs, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimSuffix(s.spec.Config.(*Config).Index, "{name}-{yyyy.MM.dd}")
	gotIdx := map[string]string{}
	for _, d := range docs {
		gotIdx[d.ID] = d.Index
	}
	wantIdx := map[string]string{"e1": prefix + "metrics-2024.03.01", "e2": prefix + "metrics-2024.03.02"}
	if !reflect.DeepEqual(gotIdx, wantIdx) {
		t.Fatalf("indices %v, want %v", gotIdx, wantIdx)
	}
	// Both got the template's mapping: host is a keyword, not dynamic text.
	for _, idx := range wantIdx {
		if typ := fieldTypes(t, s, idx)["host"]; typ != "keyword" {
			t.Errorf("index %s maps host as %q", idx, typ)
		}
	}

	// A new field reaches the template and the existing indices.
	grown := sinks.TopicTable(&pipelines.Topic{Name: "metrics", Schema: append(
		slices.Clone(tab.Columns[:len(tab.Columns)-1]), event.Field{Name: "zone", Type: event.TypeString})})
	if err := s.Prepare(ctx, grown); err != nil {
		t.Fatal(err)
	}
	for _, idx := range wantIdx {
		if typ := fieldTypes(t, s, idx)["zone"]; typ != "keyword" {
			t.Errorf("index %s maps zone as %q", idx, typ)
		}
	}
	d3 := time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC).UnixMicro()
	nw := sinktest.Rows([]event.Value{i64(d3), str("c"), null, null, null, null, str("z"), str("e3")})
	if err := s.Write(ctx, grown, nw); err != nil {
		t.Fatal(err)
	}
	if typ := fieldTypes(t, s, prefix+"metrics-2024.03.03")["zone"]; typ != "keyword" {
		t.Errorf("a new index maps zone as %q", typ)
	}
	// A field whose type changed cannot be remapped.
	changed := sinktest.AllTypesTopic("metrics")
	changed.Columns[2].Type = event.TypeString
	if err := s.Prepare(ctx, changed); !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Prepare with a changed type: %v, want ErrPermanent", err)
	}
}

func TestViewDocumentIDs(t *testing.T) {
	s := newTestSink(t, "", nil)
	ctx := ctxT(t)
	tab := viewTable("cpu_by_region")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	w := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).UnixMicro()
	m := time.Minute.Microseconds()
	rows := sinktest.Rows(
		[]event.Value{i64(w), i64(w + m), str("eu"), i64(1), f64(1)},
		[]event.Value{i64(w), i64(w + m), str(`e","u`), i64(2), null}, // would collide if joined naively
		[]event.Value{i64(w), i64(w + m), null, i64(3), null},         // a null group is a group
		[]event.Value{i64(w + m), i64(w + 2*m), str("eu"), i64(4), null},
		[]event.Value{i64(w), i64(w + m), str("eu"), i64(5), f64(2)}, // a correction, later in the same call
	)
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	docs, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	got := byID(t, docs)
	wantIDs := []string{
		`["eu","2024-03-01T12:00:00.000000Z"]`,
		`["e\",\"u","2024-03-01T12:00:00.000000Z"]`,
		`[null,"2024-03-01T12:00:00.000000Z"]`,
		`["eu","2024-03-01T12:01:00.000000Z"]`,
	}
	var ids []string
	for id := range got {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Sort(wantIDs)
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Fatalf("ids %q, want %q", ids, wantIDs)
	}
	if ev := got[`["eu","2024-03-01T12:00:00.000000Z"]`]["events"]; ev != int64(5) {
		t.Fatalf("corrected window has events=%v, want 5", ev)
	}
}

func TestPoisonRowsAreRowErrors(t *testing.T) {
	s := newTestSink(t, "", nil)
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	// The pipeline now says bytes is a string, but the index maps a long.
	changed := sinktest.AllTypesTopic("metrics")
	changed.Columns[2].Type = event.TypeString
	var rows []sinks.Row
	for i := range 20 {
		v := []event.Value{i64(int64(i)), str("h"), str("12"), null, null, null, str(string(rune('a' + i)))}
		switch i {
		case 4:
			v[2] = str("not a number") // refused by OpenSearch: mapper_parsing_exception
		case 9:
			v[3] = i64(math.MaxInt32 + 1) // out of range for integer
		case 13:
			v[4] = f64(math.NaN()) // cannot be JSON
		}
		rows = append(rows, sinks.Row{Values: v, Time: v[0].I})
	}
	err := s.Write(ctx, changed, rows)
	var re sinks.RowErrors
	if !errors.As(err, &re) {
		t.Fatalf("Write: %v, want RowErrors", err)
	}
	var idx []int
	for _, e := range re {
		idx = append(idx, e.Index)
	}
	if !reflect.DeepEqual(idx, []int{4, 9, 13}) {
		t.Fatalf("rows rejected %v (%v), want 4, 9, 13", idx, re)
	}
	t.Log(re)
	docs, err := readAll(ctx, s, changed)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 17 {
		t.Fatalf("%d documents, want 17", len(docs))
	}
	// _source keeps what was sent; the long mapping indexed it as 12.
	if v := byID(t, docs)["a"]["bytes"]; v != "12" {
		t.Fatalf("bytes of a = %#v, want \"12\"", v)
	}
}

// TestRejectedItemsAreResent puts a proxy in front of OpenSearch that
// answers the first bulk with 429 for some items, as a node whose write
// queue is full does; they are resent and land.
func TestRejectedItemsAreResent(t *testing.T) {
	target := testURL(t)
	proxy := newRejectingProxy(t, target, 3)
	s := newTestSink(t, "", func(sp *pipelines.Sink) { sp.Config.(*Config).URLs = []string{proxy.URL} })
	s.resend.Base = time.Millisecond
	ctx := ctxT(t)
	tab := sinktest.AllTypesTopic("metrics")
	if err := s.Prepare(ctx, tab); err != nil {
		t.Fatal(err)
	}
	var rows []sinks.Row
	for i := range 10 {
		rows = append(rows, sinktest.Rows([]event.Value{i64(int64(i)), str("h"), i64(int64(i)), null, null, null, str(string(rune('a' + i)))})...)
	}
	if err := s.Write(ctx, tab, rows); err != nil {
		t.Fatal(err)
	}
	if n := proxy.bulks.Load(); n != 2 {
		t.Errorf("%d bulk requests, want 2 (the second resending the rejected items)", n)
	}
	docs, err := readAll(ctx, s, tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 10 {
		t.Fatalf("%d documents, want 10", len(docs))
	}

	// Rejected every time: a transient error, not RowErrors.
	proxy.reject.Store(1 << 30)
	err = s.Write(ctx, tab, rows)
	var re sinks.RowErrors
	if err == nil || errors.As(err, &re) || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Write with every item rejected: %v, want a transient error", err)
	}
}

func TestDownIsTransient(t *testing.T) {
	testURL(t)
	s, err := New(context.Background(), &pipelines.Sink{Name: "down", Config: &Config{URLs: []string{"http://127.0.0.1:1"}}, Create: true}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	if err := s.Ping(ctx); err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Ping: %v, want a transient error", err)
	}
	if err := s.Prepare(ctx, sinktest.AllTypesTopic("t")); err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Prepare: %v, want a transient error", err)
	}
	err = s.Write(ctx, sinktest.AllTypesTopic("t"), sinktest.Rows([]event.Value{i64(1), str("a"), null, null, null, null, str("e1")}))
	if err == nil || errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Write: %v, want a transient error", err)
	}
}

func TestPrepareRefusesBadIndexName(t *testing.T) {
	s := newTestSink(t, "", nil)
	if err := s.Prepare(ctxT(t), sinktest.AllTypesTopic("Metrics")); !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("Prepare(Metrics): %v, want ErrPermanent", err)
	}
}

func TestPing(t *testing.T) {
	s := newTestSink(t, "", nil)
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// fieldTypes returns the mapped type of each field of index, and checks
// that dynamic mapping is off.
func fieldTypes(t *testing.T, s *Sink, index string) map[string]string {
	t.Helper()
	resp, err := s.client.PerformRequest(ctxT(t), elastic.PerformRequestOptions{Method: http.MethodGet, Path: "/" + index + "/_mapping"})
	if err != nil {
		t.Fatalf("mapping of %s: %v", index, err)
	}
	var m map[string]struct {
		Mappings struct {
			Dynamic    any `json:"dynamic"`
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(resp.Body, &m); err != nil || len(m) != 1 {
		t.Fatalf("mapping of %s: %v: %s", index, err, resp.Body)
	}
	out := map[string]string{}
	for _, im := range m {
		if d := fmt.Sprint(im.Mappings.Dynamic); d != "false" {
			t.Errorf("index %s: dynamic %s, want false", index, d)
		}
		for f, p := range im.Mappings.Properties {
			out[f] = p.Type
		}
	}
	return out
}
