package batch

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLakeCopies: the local copies of a lake on object storage are its
// live files byte for byte, fetched once and served from disk afterwards
// (a file damaged in storage since is not fetched again); a topic larger
// than the bound is refused at once, naming it, and fetches nothing;
// copies a reader holds are never dropped to make room (another topic is
// refused meanwhile), those released are, least recently asked for first;
// a file that fails its check is served to no one, leaves nothing behind
// and is fetched again by the next reader.
func TestLakeCopies(t *testing.T) {
	srv := s3test.Env(t)
	at := lakeAt{s3: &srv, url: srv.URL(srv.Prefix(t, "lake"))}
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		at.apply(p)
		p.Topics = append(p.Topics, testTopic("other", 2))
		p.Lake.Roll.MaxRows = 20
		p.Lake.Compact.Interval = 0
	})
	var evs []event.Event
	for i := range 200 {
		evs = append(evs, testEvent("e", i, t0, 6*time.Second))
	}
	for off := 0; off < len(evs); off += 40 {
		e.add(evs[off : off+40])
		appendEvents(t, e.br, "other", 2, evs[off:off+20])
		waitLake(t, e.b, e.clk, "other", logEnds(t, e.br, "other"))
	}
	ctx := context.Background()
	st := openStore(t, e.p)

	sizes := map[string]int64{}
	for _, topic := range []string{"metrics", "other"} {
		for _, fe := range e.b.manifestOf(topic).Files() {
			sizes[topic] += fe.Bytes
		}
	}
	// checkCopies compares the copies with the topic's live files.
	checkCopies := func(t *testing.T, topic string, paths []string) {
		t.Helper()
		files := e.b.manifestOf(topic).Files()
		if len(paths) != len(files) || len(files) < 4 {
			t.Fatalf("%s: %d copies of %d live files", topic, len(paths), len(files))
		}
		for i, fe := range files {
			want, err := st.ReadFile(ctx, topic+"/"+fe.Path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(paths[i])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || crc32.Checksum(got, castagnoli) != fe.CRC32C {
				t.Fatalf("%s: the copy %s is not %s", topic, paths[i], fe.Path)
			}
		}
	}
	openCopies := func(t *testing.T, dir string, max int64, reg prometheus.Registerer) *LakeCopies {
		t.Helper()
		c, err := OpenLakeCopies(e.p, dir, max, testLogger(t), reg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir := filepath.Join(t.TempDir(), "sql-lake")
	if err := os.MkdirAll(filepath.Join(dir, "metrics"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics", "left.parquet"), []byte("a previous process's"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("fetched once", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := openCopies(t, dir, sizes["metrics"], reg)
		defer c.Close()
		if got := filesUnder(t, dir); len(got) != 0 {
			t.Fatalf("left from before: %v", got)
		}
		paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		checkCopies(t, "metrics", paths)
		release()
		n := float64(len(paths))
		metrics := func() [4]float64 {
			return [4]float64{testutil.ToFloat64(c.reads.WithLabelValues("hit")), testutil.ToFloat64(c.reads.WithLabelValues("miss")),
				testutil.ToFloat64(c.bytesHeld), testutil.ToFloat64(c.filesHeld)}
		}
		if got, want := metrics(), [4]float64{0, n, float64(sizes["metrics"]), n}; got != want {
			t.Fatalf("metrics after the first read: %v, want %v", got, want)
		}
		// Damaged in storage: the copy checked before is served.
		files := e.b.manifestOf("metrics").Files()
		flipBit(t, e.p, "metrics/"+files[1].Path)
		defer flipBit(t, e.p, "metrics/"+files[1].Path)
		again, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil || !slices.Equal(again, paths) {
			t.Fatalf("asked again: %v, %v (before: %v)", again, err, paths)
		}
		release()
		if got, want := metrics(), [4]float64{n, n, float64(sizes["metrics"]), n}; got != want {
			t.Fatalf("metrics after the second read: %v, want %v", got, want)
		}
		if count, err := testutil.GatherAndCount(reg); err != nil || count != 4 {
			t.Fatalf("registered series: %d, %v", count, err)
		}
		if got := filesUnder(t, dir); !slices.Equal(got, sortedCopy(paths)) {
			t.Fatalf("the directory holds %v, want %v", got, paths)
		}
		// Bounded by event time: the files of the hour, or none.
		hour, release, err := c.Files(ctx, "metrics", t0.Add(-time.Minute), t0.Add(time.Minute))
		if err != nil || !slices.Equal(hour, paths) {
			t.Fatalf("the files of the hour: %v, %v", hour, err)
		}
		release()
		later, release, err := c.Files(ctx, "metrics", t0.Add(time.Hour), time.Time{})
		if err != nil || len(later) != 0 {
			t.Fatalf("the files of an hour after: %v, %v", later, err)
		}
		release()
	})

	t.Run("bound", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, sizes["metrics"]-1, nil)
		defer c.Close()
		_, _, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		var bound interface{ Limit() string }
		if !errors.Is(err, ErrLakeCopiesFull) || !errors.As(err, &bound) || bound.Limit() != "sql.lake_cache" ||
			!strings.Contains(err.Error(), "the lake of topic metrics is") || !strings.Contains(err.Error(), "more than sql.lake_cache") {
			t.Fatalf("a topic over the bound: %v", err)
		}
		if got := filesUnder(t, dir); len(got) != 0 {
			t.Fatalf("fetched anyway: %v", got)
		}
	})

	t.Run("held copies stay", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, max(sizes["metrics"], sizes["other"]), nil)
		defer c.Close()
		metrics, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Files(ctx, "other", time.Time{}, time.Time{}); !errors.Is(err, ErrLakeCopiesFull) || !strings.Contains(err.Error(), "other queries are reading") {
			t.Fatalf("other while metrics is held: %v", err)
		}
		checkCopies(t, "metrics", metrics)
		release()
		other, release, err := c.Files(ctx, "other", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		checkCopies(t, "other", other)
		// Metrics's copies went, oldest first, until other's fit.
		var held int64
		kept := 0
		for _, f := range filesUnder(t, dir) {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			held += info.Size()
			if !slices.Contains(other, f) {
				if !slices.Contains(metrics, f) {
					t.Fatalf("the directory holds %s, no copy asked for", f)
				}
				kept++
			}
		}
		if limit := max(sizes["metrics"], sizes["other"]); held > limit || kept >= len(metrics) {
			t.Fatalf("the directory holds %d bytes (bound %d), %d of metrics's %d copies", held, limit, kept, len(metrics))
		}
	})

	t.Run("concurrent readers", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, sizes["metrics"], nil)
		defer c.Close()
		opens := &openCounter{Store: st, n: map[string]int{}}
		c.st = opens
		const readers = 6
		got := make([][]string, readers)
		var g errgroup.Group
		for i := range readers {
			g.Go(func() error {
				paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
				if err != nil {
					return err
				}
				defer release()
				got[i] = paths
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		checkCopies(t, "metrics", got[0])
		for i := range got {
			if !slices.Equal(got[i], got[0]) {
				t.Fatalf("reader %d got %v, reader 0 %v", i, got[i], got[0])
			}
		}
		files := e.b.manifestOf("metrics").Files()
		for _, fe := range files {
			if n := opens.count("metrics/" + fe.Path); n != 1 {
				t.Fatalf("%s fetched %d times by %d readers", fe.Path, n, readers)
			}
		}
	})

	t.Run("a store read through Open", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, sizes["metrics"], nil)
		defer c.Close()
		c.st = struct{ lakestore.Store }{st} // no Download
		paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		checkCopies(t, "metrics", paths)
	})

	t.Run("kept across a restart", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, sizes["metrics"], nil)
		paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		release()
		c.Close()
		// Left besides: a write cut short, something else, and a copy
		// damaged on disk (its size unchanged).
		stray := []string{filepath.Join(filepath.Dir(paths[0]), ".x.parquet.123.tmp"), filepath.Join(dir, "metrics", "other.parquet")}
		for _, f := range stray {
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(paths[1])
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(paths[1], b, 0o644); err != nil {
			t.Fatal(err)
		}

		reg := prometheus.NewRegistry()
		c = openCopies(t, dir, sizes["metrics"], reg)
		if got := filesUnder(t, dir); !slices.Equal(got, sortedCopy(paths)) {
			t.Fatalf("after a restart the directory holds %v, want the copies %v", got, paths)
		}
		if held := testutil.ToFloat64(c.bytesHeld); held != float64(sizes["metrics"]) {
			t.Fatalf("held %v bytes after a restart, want %d", held, sizes["metrics"])
		}
		opens := &openCounter{Store: st, n: map[string]int{}}
		c.st = opens
		again, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil || !slices.Equal(again, paths) {
			t.Fatalf("asked after a restart: %v, %v", again, err)
		}
		checkCopies(t, "metrics", again)
		release()
		files := e.b.manifestOf("metrics").Files()
		for i, fe := range files {
			if n, want := opens.count("metrics/"+fe.Path), map[bool]int{true: 1, false: 0}[i == 1]; n != want {
				t.Fatalf("%s fetched %d times after a restart, want %d", fe.Path, n, want)
			}
		}
		c.Close()

		// A smaller bound drops the oldest at start.
		c = openCopies(t, dir, sizes["metrics"]-1, nil)
		defer c.Close()
		var held int64
		left := filesUnder(t, dir)
		for _, f := range left {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			held += info.Size()
		}
		if len(left) >= len(paths) || held > sizes["metrics"]-1 || c.bytes != held {
			t.Fatalf("under a smaller bound: %d of %d copies, %d bytes (%d counted), bound %d", len(left), len(paths), held, c.bytes, sizes["metrics"]-1)
		}
	})

	t.Run("damaged", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sql-lake")
		c := openCopies(t, dir, sizes["metrics"], nil)
		defer c.Close()
		files := e.b.manifestOf("metrics").Files()
		flipBit(t, e.p, "metrics/"+files[2].Path)
		_, _, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if !errors.Is(err, ErrCorruptFile) || !strings.Contains(err.Error(), files[2].Path) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("a damaged file: %v", err)
		}
		for _, f := range filesUnder(t, dir) {
			if strings.Contains(f, strings.TrimSuffix(filepath.Base(files[2].Path), ".parquet")) {
				t.Fatalf("the damaged file left %s", f)
			}
		}
		flipBit(t, e.p, "metrics/"+files[2].Path)
		paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		checkCopies(t, "metrics", paths)
	})
}

// openCounter counts the objects opened or downloaded, by key.
type openCounter struct {
	lakestore.Store
	mu sync.Mutex
	n  map[string]int
}

func (s *openCounter) Open(ctx context.Context, key string) (lakestore.Object, error) {
	s.mu.Lock()
	s.n[key]++
	s.mu.Unlock()
	return s.Store.Open(ctx, key)
}

func (s *openCounter) Download(ctx context.Context, key string, w io.Writer) (int64, error) {
	s.mu.Lock()
	s.n[key]++
	s.mu.Unlock()
	return s.Store.(downloader).Download(ctx, key, w)
}

func (s *openCounter) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// filesUnder lists the files under dir, sorted.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
