package batch

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

func TestManifestInvariants(t *testing.T) {
	dir := t.TempDir()
	ms, err := openManifestStore(dir, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	h := t0.UnixMicro()
	f := func(first, last int64) fileEntry {
		return fileEntry{Path: hourPath(h) + "/" + fileName(0, first, last), Hour: h, First: first, Last: last, Rows: 1}
	}
	if _, err := ms.update(func(m *manifest) error {
		m.Files = append(m.Files, f(0, 9))
		m.setPartition(partitionState{Partition: 0, Next: 10})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(m *manifest) error{
		"overlap": func(m *manifest) error {
			m.Files = append(m.Files, f(5, 12))
			m.setPartition(partitionState{Partition: 0, Next: 13})
			return nil
		},
		"past next": func(m *manifest) error {
			m.Files = append(m.Files, f(10, 19))
			return nil
		},
	} {
		if _, err := ms.update(change); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := readManifest(dir, "metrics")
	if err != nil || m.Version != 1 || len(m.Files) != 1 {
		t.Fatalf("after refused updates: %+v %v", m, err)
	}
	os.WriteFile(filepath.Join(dir, manifestName), []byte(`{"format":1,"files":[{"path":"x","first":0,"last":5}]}`), 0o644)
	if _, err := readManifest(dir, "metrics"); err == nil || !strings.Contains(err.Error(), manifestName) {
		t.Errorf("corrupt manifest: %v", err)
	}
}

func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"topic":"t","version":3,"partitions":[{"partition":0,"next":10}],"files":[{"path":"a/p0-0-9.parquet","first":0,"last":9}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, manifestName), data, 0o644)
		readManifest(dir, "t") // must not panic
	})
}

// FuzzReadViewFile reads a view's batch file as it may be found on disk
// (truncated, edited, of another version): no panic, and what reads is
// written and read back the same.
func FuzzReadViewFile(f *testing.F) {
	v := testView("v", "metrics")
	topic := testTopic("metrics", 1)
	st := newViewState()
	st.horizon, st.hasHorizon, st.lakeVersion = t0.UnixMicro(), true, 7
	st.replace(minTime, maxTime, []viewrow.Row{{Start: 0, End: 60e6, Group: []event.Value{{S: "eu", Valid: true}}, Aggs: []event.Value{
		{I: 3, Valid: true}, {F: math.Inf(1), Valid: true}, {F: 0.5, Valid: true}, {}, {I: -5, Valid: true}, {I: 0, Valid: true}}}}, nil)
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, viewFileName), data, 0o644)
		got, err := readViewFile(dir, &v, &topic)
		if err != nil {
			return
		}
		again := t.TempDir()
		if err := writeViewFile(again, &v, &topic, got); err != nil {
			t.Fatalf("a view file that reads does not write: %v", err)
		}
		back, err := readViewFile(again, &v, &topic)
		if err != nil {
			t.Fatalf("a view file written from one that read does not read: %v", err)
		}
		if back.horizon != got.horizon || back.hasHorizon != got.hasHorizon || back.lakeVersion != got.lakeVersion || len(back.rows) != len(got.rows) {
			t.Fatalf("read %+v, after writing it %+v", got, back)
		}
	})
}

func TestViewFileRoundTrip(t *testing.T) {
	v := testView("v", "metrics")
	topic := testTopic("metrics", 1)
	st := newViewState()
	st.horizon, st.hasHorizon, st.lakeVersion = t0.UnixMicro(), true, 7
	rows := []viewrow.Row{
		{Start: 0, End: 60e6, Group: []event.Value{{S: "", Valid: true}}, Aggs: []event.Value{
			{I: 3, Valid: true}, {F: math.Inf(1), Valid: true}, {F: math.NaN(), Valid: true}, {}, {I: -5, Valid: true}, {I: 0, Valid: true}}},
		{Start: 60e6, End: 120e6, Group: []event.Value{{}}, Aggs: []event.Value{
			{I: 1, Valid: true}, {F: 0, Valid: true}, {F: -1.5, Valid: true}, {F: 2.25, Valid: true}, {I: 0, Valid: true}, {I: 1, Valid: true}}},
	}
	st.replace(minTime, maxTime, rows, nil)
	dir := t.TempDir()
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeViewData(dir, data); err != nil {
		t.Fatal(err)
	}
	got, err := readViewFile(dir, &v, &topic)
	if err != nil {
		t.Fatal(err)
	}
	if got.horizon != st.horizon || !got.hasHorizon || got.lakeVersion != 7 || len(got.rows) != 2 {
		t.Fatalf("got %+v", got)
	}
	for i, r := range got.sortedRows() {
		w := st.sortedRows()[i]
		if event.GroupKey(r.Group) != event.GroupKey(w.Group) || r.Start != w.Start || r.End != w.End {
			t.Fatalf("row %d: %+v, want %+v", i, r, w)
		}
		for j := range r.Aggs {
			a, b := r.Aggs[j], w.Aggs[j]
			if a.Valid != b.Valid || a.I != b.I || !(a.F == b.F || math.IsNaN(a.F) && math.IsNaN(b.F)) {
				t.Fatalf("row %d agg %d: %+v, want %+v", i, j, a, b)
			}
		}
	}
	// A changed view definition drops the old rows.
	v.GroupBy = []string{"host"}
	if got, err := readViewFile(dir, &v, &topic); err != nil || got.hasHorizon || len(got.rows) != 0 {
		t.Fatalf("changed view: %+v %v", got, err)
	}
}

// TestViewFileFormat1: a view file written by earlier builds (format 1:
// timestamps as UTC µs, bools as 0 and 1) is read, and written again in
// format 2, the exact JSON form.
func TestViewFileFormat1(t *testing.T) {
	topic := testTopic("metrics", 1)
	topic.Schema = append(topic.Schema, event.Field{Name: "ok", Type: event.TypeBool})
	v := testView("v", "metrics")
	v.GroupBy = []string{"ok"}
	v.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"},
		{Name: "newest", Func: "max", Field: "ts"},
		{Name: "top", Func: "max", Field: "cpu"},
	}
	dir := t.TempDir()
	old := `{"format":1,"view":"v","horizon":120000000,"lake_version":3,` +
		`"columns":["window_start","window_end","ok","events","newest","top"],"rows":[` +
		`[0,60000000,1,2,1500,"+Inf"],[60000000,120000000,0,1,null,"NaN"],[60000000,120000000,null,4,-7,2.5]]}`
	if err := os.WriteFile(filepath.Join(dir, viewFileName), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readViewFile(dir, &v, &topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range st.sortedRows() {
		got = append(got, fmt.Sprintf("%d-%d %v %v", r.Start, r.End, r.Group, r.Aggs))
	}
	want := []string{
		"0-60000000 [{ 1 0 true}] [{ 2 0 true} { 1500 0 true} { 0 +Inf true}]",
		"60000000-120000000 [{ 0 0 false}] [{ 4 0 true} { -7 0 true} { 0 2.5 true}]",
		"60000000-120000000 [{ 0 0 true}] [{ 1 0 true} { 0 0 false} { 0 NaN true}]",
	}
	if !slices.Equal(got, want) || st.horizon != 120e6 || !st.hasHorizon || st.lakeVersion != 3 {
		t.Fatalf("format 1 file read as %q (horizon %d, lake version %d), want %q", got, st.horizon, st.lakeVersion, want)
	}
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeViewData(dir, data); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, viewFileName))
	if err != nil {
		t.Fatal(err)
	}
	wantFile := `{"format":2,"view":"v","horizon":120000000,"lake_version":3,` +
		`"columns":["window_start","window_end","ok","events","newest","top"],"rows":[` +
		`["1970-01-01T00:00:00.000000Z","1970-01-01T00:01:00.000000Z",true,2,"1970-01-01T00:00:00.001500Z","+Inf"],` +
		`["1970-01-01T00:01:00.000000Z","1970-01-01T00:02:00.000000Z",null,4,"1969-12-31T23:59:59.999993Z",2.5],` +
		`["1970-01-01T00:01:00.000000Z","1970-01-01T00:02:00.000000Z",false,1,null,"NaN"]]}`
	if string(b) != wantFile {
		t.Fatalf("view file\n%s\nwant\n%s", b, wantFile)
	}
	again, err := readViewFile(dir, &v, &topic)
	if err != nil || len(again.rows) != 3 {
		t.Fatalf("format 2 file read back: %d rows, %v", len(again.rows), err)
	}
}

// writeViewFile encodes st and stores it in dir, as a run does before it
// publishes the file.
func writeViewFile(dir string, v *pipelines.View, from *pipelines.Topic, st *viewState) error {
	data, err := encodeViewFile(v, from, st)
	if err != nil {
		return err
	}
	return writeViewData(dir, data)
}
