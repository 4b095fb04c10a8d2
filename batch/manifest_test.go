package batch

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	f := func(first, last int64) FileEntry {
		return FileEntry{Path: hourPath(h) + "/" + fileName(0, first, last), Hour: h, First: first, Last: last, Rows: 1}
	}
	if _, err := ms.update(func(m *Manifest) error {
		m.Files = append(m.Files, f(0, 9))
		m.setPartition(PartitionState{Partition: 0, Next: 10})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(m *Manifest) error{
		"overlap": func(m *Manifest) error {
			m.Files = append(m.Files, f(5, 12))
			m.setPartition(PartitionState{Partition: 0, Next: 13})
			return nil
		},
		"past next": func(m *Manifest) error {
			m.Files = append(m.Files, f(10, 19))
			return nil
		},
	} {
		if _, err := ms.update(change); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := ReadManifest(dir, "metrics")
	if err != nil || m.Version != 1 || len(m.Files) != 1 {
		t.Fatalf("after refused updates: %+v %v", m, err)
	}
	os.WriteFile(filepath.Join(dir, manifestName), []byte(`{"format":1,"files":[{"path":"x","first":0,"last":5}]}`), 0o644)
	if _, err := ReadManifest(dir, "metrics"); err == nil || !strings.Contains(err.Error(), manifestName) {
		t.Errorf("corrupt manifest: %v", err)
	}
}

func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"topic":"t","version":3,"partitions":[{"partition":0,"next":10}],"files":[{"path":"a/p0-0-9.parquet","first":0,"last":9}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, manifestName), data, 0o644)
		ReadManifest(dir, "t") // must not panic
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
	seed := f.TempDir()
	if err := writeViewFile(seed, &v, &topic, st); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(seed, viewFileName))
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
	if err := writeViewFile(dir, &v, &topic, st); err != nil {
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
		if groupString(r.Group) != groupString(w.Group) || r.Start != w.Start || r.End != w.End {
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
