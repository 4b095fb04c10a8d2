package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// gatedStore is a lake store whose opens wait at a gate, counting how
// many are in flight and how many objects are open.
type gatedStore struct {
	lakestore.Store
	gate     chan struct{} // closed: opens go on
	inFlight atomic.Int64
	most     atomic.Int64
	started  atomic.Int64
	open     atomic.Int64 // objects opened and not closed
}

func (s *gatedStore) Open(ctx context.Context, key string) (lakestore.Object, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.started.Add(1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedObject{Object: o, open: &s.open}, nil
}

type countedObject struct {
	lakestore.Object
	once sync.Once
	open *atomic.Int64
}

func (o *countedObject) Close() error {
	o.once.Do(func() { o.open.Add(-1) })
	return o.Object.Close()
}

// TestPrefetch: on a lake other than a local directory, a read's files
// are fetched a number at a time ahead of the reader, never more, and
// handed over in order, each checked; stopping early closes what was
// fetched and not taken. A local directory is read with no fetching ahead.
func TestPrefetch(t *testing.T) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		p.Lake.Compact.Interval = 0
	})
	var evs []event.Event
	for i := range 1200 {
		evs = append(evs, testEvent("e", i, t0, 6*time.Second))
	}
	for off := 0; off < len(evs); off += 20 {
		e.add(evs[off : off+20])
	}
	tl := e.b.lakes["metrics"]
	files := e.b.manifestOf("metrics").Files()
	const ahead = 8
	if len(files) < 3*ahead {
		t.Fatalf("%d files, want at least %d", len(files), 3*ahead)
	}
	ctx := context.Background()

	if p := tl.prefetchFiles(ctx, files); p.slots != nil {
		t.Fatal("a local directory's files are fetched ahead")
	}

	st := &gatedStore{Store: tl.st, gate: make(chan struct{})}
	gated := &topicLake{topic: tl.topic, st: st, ls: tl.ls, ms: tl.ms, layout: tl.layout, scan: tl.scan}
	p := gated.prefetchAhead(ctx, files, ahead)
	deadline := time.Now().Add(10 * time.Second)
	for st.inFlight.Load() < ahead && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for any fetch beyond the limit to start
	if n, most := st.inFlight.Load(), st.most.Load(); n != ahead || most != ahead {
		t.Fatalf("%d opens in flight (at most %d), want %d", n, most, ahead)
	}
	close(st.gate)
	rows := int64(0)
	for i := range len(files) / 2 {
		err := p.scanFile(ctx, i, scanOptions{}, func(b *scanBatch) error {
			rows += int64(len(b.Events))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := st.started.Load() - int64(i+1); n > ahead {
			t.Fatalf("after file %d, %d files fetched ahead of the reader, want at most %d", i, n, ahead)
		}
	}
	var want int64
	for _, fe := range files[:len(files)/2] {
		want += fe.Rows
	}
	if rows != want {
		t.Fatalf("read %d rows, the files hold %d", rows, want)
	}
	p.stop()
	if n := st.open.Load(); n != 0 {
		t.Fatalf("%d objects open after stop", n)
	}
	if n := st.started.Load(); n > int64(len(files)/2+ahead) {
		t.Fatalf("%d files fetched for a reader that took %d", n, len(files)/2)
	}
}

// TestReadAhead: files are fetched ahead up to readAheadBytes of the
// read's largest, at least 2 and at most readAheadFiles.
func TestReadAhead(t *testing.T) {
	sized := func(bytes ...int64) []fileEntry {
		var fs []fileEntry
		for _, b := range bytes {
			fs = append(fs, fileEntry{Bytes: b})
		}
		return fs
	}
	for _, c := range []struct {
		files []fileEntry
		want  int
	}{
		{sized(4_600, 5_000, 3_000), readAheadFiles},
		{sized(1 << 20), readAheadFiles},
		{sized(100, 4<<20, 100), 16},
		{sized(20 << 20), 3},
		{sized(200 << 20), 2},
		{sized(0), readAheadFiles}, // sizes unknown (older manifests)
	} {
		if got := readAhead(c.files); got != c.want {
			t.Errorf("files of %v bytes: %d ahead, want %d", c.files, got, c.want)
		}
	}
}
