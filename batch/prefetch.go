package batch

import (
	"context"
	"sync"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// A read of a lake on object storage fetches files ahead of its readers,
// each with a request of its own: a GET takes a round trip (~1 ms to a
// server on the same machine, 10–50 ms to a cloud store), and a lake
// partitioned by hour holds thousands of small files. Read one at a time
// by each worker, a view's recompute of the flights year's 6,936 hourly
// files on the dev S3 server took a median 5.4 s; fetched ahead, 3.5 s
// (what is left is CPU: the server and the process share two cores). How
// many files are fetched ahead at once is set by the largest file of the
// read: up to readAheadBytes of them (at least 2 and at most
// readAheadFiles), so a read holds at most about readAheadBytes that its
// readers have not taken yet.
const (
	readAheadFiles = 64
	readAheadBytes = 64 << 20
)

// readAhead is how many of files a read fetches ahead of its readers.
func readAhead(files []fileEntry) int {
	var most int64 = 1
	for _, fe := range files {
		most = max(most, fe.Bytes)
	}
	return int(min(readAheadFiles, max(2, readAheadBytes/most)))
}

// prefetch opens the files of one read (a batch span, a session span, a
// merge) for its readers, each file once. On a lake in a local directory
// it opens a file when asked (its files are mapped, not read: nothing to
// wait for); on object storage it fetches them ahead of the readers, in
// their order, readAhead(files) at a time.
type prefetch struct {
	tl     *topicLake
	files  []fileEntry
	slots  []fetched     // nil: open each file when asked
	tokens chan struct{} // one per file fetched or being fetched and not yet taken
	mu     sync.Mutex
	next   int // the next file to fetch, under mu
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// fetched is one file's outcome: ready is closed once o (owned by the
// prefetch until taken) or err is set.
type fetched struct {
	ready chan struct{}
	o     lakestore.Object
	name  string
	err   error
	taken bool // under prefetch.mu
}

// prefetchFiles returns the prefetch of a read of files, fetching ahead
// when tl's lake is not a local directory. The caller takes each file
// once (open, openLakeFile or scanFile) and calls stop when done.
func (tl *topicLake) prefetchFiles(ctx context.Context, files []fileEntry) *prefetch {
	return tl.prefetchAhead(ctx, files, readAhead(files))
}

// prefetchAhead is prefetchFiles fetching ahead at most ahead files.
func (tl *topicLake) prefetchAhead(ctx context.Context, files []fileEntry, ahead int) *prefetch {
	p := &prefetch{tl: tl, files: files}
	if _, local := tl.st.(*lakestore.Dir); local || len(files) < 2 {
		return p
	}
	p.slots, p.tokens = make([]fetched, len(files)), make(chan struct{}, ahead)
	for i := range p.slots {
		p.slots[i].ready = make(chan struct{})
	}
	ctx, p.cancel = context.WithCancel(ctx)
	for range min(ahead, len(files)) {
		p.wg.Go(func() { p.fetch(ctx) })
	}
	return p
}

// fetch opens files in order until none is left, holding a token for
// each until its reader takes it.
func (p *prefetch) fetch(ctx context.Context) {
	for {
		select {
		case p.tokens <- struct{}{}:
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		i := p.next
		p.next++
		p.mu.Unlock()
		if i >= len(p.files) {
			<-p.tokens
			return
		}
		s := &p.slots[i]
		s.o, s.name, s.err = p.tl.openFile(ctx, p.files[i])
		close(s.ready)
	}
}

// open returns file i (an index into the files given to prefetchFiles),
// checked as tl.openFile checks it; the caller owns it.
func (p *prefetch) open(ctx context.Context, i int) (lakestore.Object, string, error) {
	if p.slots == nil {
		return p.tl.openFile(ctx, p.files[i])
	}
	s := &p.slots[i]
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	p.mu.Lock()
	s.taken = true
	p.mu.Unlock()
	<-p.tokens
	return s.o, s.name, s.err
}

// openLakeFile opens file i for a scan of opts (see openLakeObject).
func (p *prefetch) openLakeFile(ctx context.Context, i int, opts scanOptions) (*lakeFile, error) {
	o, name, err := p.open(ctx, i)
	if err != nil {
		return nil, err
	}
	lf, err := openLakeObject(o, name, p.tl.topic.Schema, p.files[i], opts)
	if err != nil {
		o.Close()
		return nil, err
	}
	return lf, nil
}

// scanFile reads file i as topicLake.scanFile does.
func (p *prefetch) scanFile(ctx context.Context, i int, opts scanOptions, fn func(*scanBatch) error) error {
	o, name, err := p.open(ctx, i)
	if err != nil {
		return err
	}
	defer o.Close()
	return p.tl.scan(ctx, o, name, p.tl.topic.Schema, p.files[i], opts, fn)
}

// stop ends the fetching and closes the files fetched and not taken.
func (p *prefetch) stop() {
	if p.slots == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
	for i := range p.slots {
		s := &p.slots[i]
		select {
		case <-s.ready:
		default:
			continue // never fetched
		}
		if !s.taken && s.o != nil {
			s.o.Close()
		}
	}
}
