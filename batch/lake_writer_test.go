package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
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

// TestLakeWriterLag checks the lake writer's two positions: what it read
// shows at once, what is durable only when its file rolls. A healthy
// writer waiting for its roll has no read lag; a stopped one falls behind
// in both.
func TestLakeWriterLag(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 1)}, nil)
	// Ahead of the log's append times, so ages are positive.
	clk := fakeclock.New(time.Now().Add(time.Hour))
	br := openBroker(t, p, clk.Now)
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	lake := func() api.Lag {
		t.Helper()
		lag, err := br.Lag(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lag {
			if l.Consumer == lakeConsumer {
				return l
			}
		}
		t.Fatalf("no lake consumer in %+v", lag)
		return api.Lag{}
	}
	var evs []event.Event
	for i := range 150 {
		evs = append(evs, testEvent("e", i, t0, time.Second))
	}
	appendEvents(t, br, "metrics", 1, evs[:100])

	// Read at once (reports are written every second), durable not yet:
	// the file waits for max_age.
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if l := lake(); l.ReadOffset != 100 {
			return fmt.Errorf("lake read offset %d, want 100", l.ReadOffset)
		}
		return nil
	})
	if l := lake(); l.Offset != 0 || l.Lag != 100 || l.LagSeconds <= 0 || l.ReadLag != 0 || l.ReadLagSeconds != 0 {
		t.Fatalf("a writer waiting for its roll: %+v, want committed 0 (lag 100, aged), read 100 (no read lag)", l)
	}

	// The roll makes it durable.
	clk.Add(p.Lake.Roll.MaxAge.D())
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if l := lake(); l.Offset != 100 {
			return fmt.Errorf("lake committed offset %d, want 100", l.Offset)
		}
		return nil
	})
	if l := lake(); l.Lag != 0 || l.LagSeconds != 0 || l.ReadOffset != 100 || l.ReadLag != 0 {
		t.Fatalf("after the roll: %+v, want everything at 100", l)
	}

	// A writer that stopped reading falls behind in both.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, br, "metrics", 1, evs[100:])
	if l := lake(); l.Offset != 100 || l.Lag != 50 || l.ReadOffset != 100 || l.ReadLag != 50 || l.ReadLagSeconds <= 0 || l.ReadLagSeconds != l.LagSeconds {
		t.Fatalf("a stopped writer: %+v, want 50 events behind, read and committed, aged", l)
	}
}
