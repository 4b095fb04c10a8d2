package batch

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestFileCache(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newFileCache(800, m)
	file := func(i int, size int64) (string, fileEntry, []byte) {
		b := bytes.Repeat([]byte{byte(i)}, int(size))
		return fmt.Sprintf("t/f%d.parquet", i), fileEntry{Path: fmt.Sprintf("f%d.parquet", i), Bytes: size, CRC32C: uint32(1000 + i)}, b
	}
	for i := range 8 {
		c.put(file(i, 100))
	}
	if c.bytes != 800 || len(c.entries) != 8 {
		t.Fatalf("holds %d bytes in %d files, want 800 in 8", c.bytes, len(c.entries))
	}
	k0, fe0, b0 := file(0, 100)
	if got, ok := c.get(k0, fe0); !ok || !bytes.Equal(got, b0) {
		t.Fatalf("file 0: %v", ok)
	}
	// File 0 was read last: file 1 goes first.
	c.put(file(8, 100))
	k1, fe1, _ := file(1, 100)
	if _, ok := c.get(k1, fe1); ok || c.bytes != 800 {
		t.Fatalf("file 1 still held (%d bytes)", c.bytes)
	}
	if _, ok := c.get(k0, fe0); !ok {
		t.Fatal("file 0, read last, was dropped")
	}
	// The same name with another size or checksum is another file.
	for _, other := range []fileEntry{{Bytes: 100, CRC32C: 1}, {Bytes: 99, CRC32C: fe0.CRC32C}} {
		if _, ok := c.get(k0, other); ok {
			t.Fatalf("%s found as %+v", k0, other)
		}
	}
	// Not kept: files over an eighth of the cache, files without a
	// checksum, bytes that are not the entry's size.
	k, fe, b := file(9, 101)
	c.put(k, fe, b)
	k10, fe10, b10 := file(10, 50)
	fe10.CRC32C = 0
	c.put(k10, fe10, b10)
	k11, fe11, b11 := file(11, 50)
	c.put(k11, fe11, b11[:49])
	for _, f := range []struct {
		k  string
		fe fileEntry
	}{{k, fe}, {k10, fe10}, {k11, fe11}} {
		if _, ok := c.get(f.k, f.fe); ok {
			t.Fatalf("%s kept", f.k)
		}
	}
	if hits, misses := testutil.ToFloat64(m.cacheReads.WithLabelValues("hit")), testutil.ToFloat64(m.cacheReads.WithLabelValues("miss")); hits != 2 || misses != 5 {
		t.Fatalf("%v hits and %v misses counted, want 2 and 5", hits, misses)
	}
	if got := testutil.ToFloat64(m.cacheBytes); got != 800 {
		t.Fatalf("cache bytes gauge %v", got)
	}
	// Dropped (replaced by a compaction): gone, its bytes no longer held.
	c.drop(k0, fe0)
	if c.bytes != 700 || len(c.entries) != 7 {
		t.Fatalf("after a drop: %d bytes in %d files", c.bytes, len(c.entries))
	}
	if _, ok := c.get(k0, fe0); ok {
		t.Fatal("a dropped file is still found")
	}
	// No cache: nothing held, nothing counted.
	none := newFileCache(0, m)
	none.put(k0, fe0, b0)
	if _, ok := none.get(k0, fe0); ok {
		t.Fatal("a cache of 0 bytes holds a file")
	}
}

// TestRecomputeCachedFiles: with the lake on object storage, the views'
// recomputes after the first read every file from lake.cache (counted by
// its metrics) with exactly the rows they had; a file damaged in storage
// afterwards is not fetched again while the cache holds the copy checked
// against the manifest; a cache too small for the span fetches what it
// does not hold, and the rows stay exact.
func TestRecomputeCachedFiles(t *testing.T) {
	srv := s3test.Env(t)
	for _, tc := range []struct {
		name  string
		cache pipelines.ByteSize
	}{{"holds the span", 64 << 20}, {"holds part of it", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			at := lakeAt{s3: &srv, url: srv.URL(srv.Prefix(t, "lake"))}
			hop := testView("hop", "metrics")
			hop.Window = pipelines.Window{Type: "hopping", Size: pipelines.Duration(10 * time.Minute), Slide: pipelines.Duration(5 * time.Minute)}
			e := newEnvWith(t, func(p *pipelines.Pipeline) {
				at.apply(p)
				p.Lake.Roll.MaxRows = 20
				p.Lake.Compact.Interval = 0
				p.Lake.Cache = tc.cache
			}, testView("cpu_by_region", "metrics"), hop)
			var evs []event.Event
			for i := range 800 {
				evs = append(evs, testEvent("e", i, t0, 6*time.Second))
			}
			for off := 0; off < len(evs); off += 40 {
				e.add(evs[off : off+40])
			}
			files := e.b.manifestOf("metrics").Files()
			var total int64
			for _, fe := range files {
				total += fe.Bytes
			}
			small := tc.cache == 0
			if small {
				// Room for about half of the files, each under an eighth.
				e.b.lakes["metrics"].cache = newFileCache(total/2, e.b.metrics)
			}
			hits := func() float64 { return testutil.ToFloat64(e.b.metrics.cacheReads.WithLabelValues("hit")) }
			misses := func() float64 { return testutil.ToFloat64(e.b.metrics.cacheReads.WithLabelValues("miss")) }
			views := []string{"cpu_by_region", "hop", "cpu_by_region"}
			var first []windowRow
			for i, view := range views {
				h0, m0 := hits(), misses()
				s := e.run(view, t0, t0.Add(2*time.Hour))
				if s.State != api.JobSucceeded || s.Rows != int64(len(evs)) {
					t.Fatalf("%s: job %+v", view, s)
				}
				got, h := e.batchRows(view)
				sameRows(t, view, got, streamingAll(t, e.p, view, evs, h))
				if i == 0 {
					first = got
				}
				h1, m1 := hits()-h0, misses()-m0
				switch {
				case i == 0 && (h1 != 0 || m1 != float64(len(files))):
					t.Fatalf("first run: %v hits, %v misses, want 0 and %d", h1, m1, len(files))
				case i > 0 && !small && (h1 != float64(len(files)) || m1 != 0):
					t.Fatalf("run %d (%s): %v hits, %v misses, want %d and 0", i, view, h1, m1, len(files))
				case i > 0 && small && (m1 == 0 || h1+m1 != float64(len(files))):
					t.Fatalf("run %d (%s) with a small cache: %v hits, %v misses of %d files", i, view, h1, m1, len(files))
				}
			}
			// Readers share the held bytes: none of them wrote to them.
			c := e.b.lakes["metrics"].cache
			for el := c.order.Front(); el != nil; el = el.Next() {
				ce := el.Value.(*cacheEntry)
				if crc32.Checksum(ce.b, castagnoli) != ce.k.crc32 {
					t.Fatalf("%s changed while held", ce.k.key)
				}
			}
			if small {
				return
			}
			// Damaged in storage after it was read: the cache's checked
			// copy is read, not the damaged object.
			ctx := context.Background()
			flipBit(t, e.p, "metrics/"+files[len(files)/2].Path)
			s, err := e.b.recomputeWait(ctx, "cpu_by_region", t0, t0.Add(2*time.Hour), nil)
			if err != nil || s.State != api.JobSucceeded {
				t.Fatalf("recompute with the damaged file held: %+v, %v", s, err)
			}
			got, _ := e.batchRows("cpu_by_region")
			sameRows(t, "after the damage", got, first)
		})
	}
}

// TestCompactionCache: a compaction's merges read each input twice (a
// survey of the merged rows, then the merge), fetching it once, and drop
// it from lake.cache once it is replaced; a recompute of the merged files
// keeps those.
func TestCompactionCache(t *testing.T) {
	srv := s3test.Env(t)
	at := lakeAt{s3: &srv, url: srv.URL(srv.Prefix(t, "lake"))}
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		at.apply(p)
		p.Lake.Roll.MaxRows = 100
		p.Lake.Compact.MinFiles = 2
		p.Lake.Compact.Interval = 0 // driven by hand below
		p.Lake.Cache = 64 << 20
	}, testView("cpu_by_region", "metrics"))
	var evs []event.Event
	for i := range 1200 {
		evs = append(evs, testEvent("e", i, t0, 6*time.Second)) // 2 hours
	}
	for off := 0; off < len(evs); off += 200 {
		e.add(evs[off : off+200])
	}
	tl := e.b.lakes["metrics"]
	before := len(tl.ms.snapshot().Files())
	misses := func() float64 { return testutil.ToFloat64(e.b.metrics.cacheReads.WithLabelValues("miss")) }
	hits := func() float64 { return testutil.ToFloat64(e.b.metrics.cacheReads.WithLabelValues("hit")) }
	m0, h0, held0 := misses(), hits(), len(tl.cache.entries)
	c := newCompactor(tl, testLogger(t), e.clk.Now, e.p.Lake.Compact, time.Minute, e.b.metrics)
	n, err := c.compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := tl.ms.snapshot().Files()
	if n == 0 || len(after) != 2 {
		t.Fatalf("%d merges: %d files before, %d after", n, before, len(after))
	}
	if m, h := misses()-m0, hits()-h0; m != float64(before) || h != float64(before) || len(tl.cache.entries) != held0 || tl.cache.bytes != 0 {
		t.Fatalf("compaction of %d files: %v fetched, %v read from the cache; the cache held %d files, now %d (%d bytes)", before, m, h, held0, len(tl.cache.entries), tl.cache.bytes)
	}
	s := e.run("cpu_by_region", t0, t0.Add(2*time.Hour))
	if s.State != api.JobSucceeded || s.Rows != int64(len(evs)) {
		t.Fatalf("job %+v", s)
	}
	if len(tl.cache.entries) != len(after) {
		t.Fatalf("after a recompute the cache holds %d files, want the %d merged", len(tl.cache.entries), len(after))
	}
}
