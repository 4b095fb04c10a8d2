package broker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDiskWatchServerWriteFailure: the server's log line of a write that
// failed for space makes the disk full (cause write), ends the appends
// waiting for an answer, and asks for a reload before appends resume;
// other errors change nothing. (The binary's TestDiskFull fills a real
// disk, where the free-space check may see it first.)
func TestDiskWatchServerWriteFailure(t *testing.T) {
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "full"})
	causes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "full_total"}, []string{"cause"})
	d := newDiskWatch(t.TempDir(), func(string, ...any) {}, gauge, causes)
	waiting := d.ctx

	d.serverError("JetStream stream 'LF_x_0' write error: read-only file system")
	if d.full.Load() || d.failed.Load() || waiting.Err() != nil {
		t.Fatal("an error other than no space made the disk full")
	}

	d.serverError("Error writing msg block: write /data/jetstream/x/1.blk: no space left on device")
	if !d.full.Load() || !d.failed.Load() {
		t.Fatalf("full %v, failed %v after a write failed for space; want both", d.full.Load(), d.failed.Load())
	}
	if waiting.Err() == nil {
		t.Fatal("appends waiting for their answer were not ended")
	}
	if v := testutil.ToFloat64(causes.WithLabelValues("write")); v != 1 {
		t.Fatalf("cause write counted %v times, want 1", v)
	}
	if v := testutil.ToFloat64(gauge); v != 1 {
		t.Fatalf("gauge %v, want 1", v)
	}
	// A second failure while full is the same episode.
	d.serverError("no space left on device")
	if v := testutil.ToFloat64(causes.WithLabelValues("write")); v != 1 {
		t.Fatalf("cause write counted %v times after a second failure, want 1", v)
	}
	if !d.refuse(time.Unix(0, 0)) {
		t.Fatal("appends not refused while full")
	}
}
