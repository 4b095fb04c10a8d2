package batch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLakeWriter writes events spread over three hours and two partitions
// and reads them back: every event once, with its values, in the hour
// directory of its event time, in files named by offset range.
func TestLakeWriter(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	clk := fakeclock.New(t0.Add(4 * time.Hour))
	br := openBroker(t, p, clk.Now)
	reg := prometheus.NewRegistry()
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Registerer: reg, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	var evs []event.Event
	for i := range 3000 {
		evs = append(evs, testEvent("e", i, t0, 3*time.Second)) // 2.5 hours
	}
	appendEvents(t, br, "metrics", 2, evs)
	// Rolling by rows makes files; the tail waits for max_age.
	waitLake(t, b, clk, "metrics", logEnds(t, br, "metrics"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, b, "metrics")
	if len(got) != len(evs) {
		t.Fatalf("lake holds %d events, want %d", len(got), len(evs))
	}
	for _, e := range evs {
		g, ok := got[e.ID]
		if !ok {
			t.Fatalf("event %s missing", e.ID)
		}
		if g.Time != e.Time || len(g.Values) != len(e.Values) {
			t.Fatalf("event %s: got %+v, want %+v", e.ID, g, e)
		}
		for i := range e.Values {
			if g.Values[i] != e.Values[i] {
				t.Fatalf("event %s field %d: got %+v, want %+v", e.ID, i, g.Values[i], e.Values[i])
			}
		}
	}
	m := b.manifestOf("metrics")
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, hourPath(f.Hour)+"/p") || f.MinTime < f.Hour || f.MaxTime >= f.Hour+hourMicros {
			t.Errorf("file %+v is not in its hour", f)
		}
		if _, err := os.Stat(filepath.Join(dir, "lake", "metrics", f.Path)); err != nil {
			t.Error(err)
		}
	}
	if hs := m.Hours(); len(hs) != 3 {
		t.Errorf("hours %v, want 3", hs)
	}
	if n := counterValue(t, b.metrics.lakeRows.WithLabelValues("metrics")); n != float64(len(evs)) {
		t.Errorf("lambdaflow_lake_rows_total = %v, want %d", n, len(evs))
	}
	// The consumer's position is the manifest's.
	for part, end := range logEnds(t, br, "metrics") {
		off, ok, err := br.Committed(context.Background(), lakeConsumer, "metrics", part)
		if err != nil || !ok || off != end {
			t.Errorf("partition %d: committed %d %v %v, want %d", part, off, ok, err, end)
		}
	}
	checkIndependent(t, filepath.Join(dir, "lake", "metrics"), evs)
}
