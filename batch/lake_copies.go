package batch

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// LakeCopies keeps local copies of the files of a lake on object storage
// for readers that open files by path (SQL's DuckDB, which reads no
// object storage here). A reader asks for a topic's live files, reads
// their copies while it holds them, and releases them; a copy no reader
// holds stays for the next one (lake files are never rewritten in place,
// and a copy is found by key, size and CRC-32C together, so it is never
// served for another file) until the bytes kept pass the bound, the least
// recently asked for going first.
//
// The bound holds on disk at every moment: a reader asking for more than
// it gets ErrLakeCopiesFull at once, and one asking while what others hold
// leaves too little room gets it too rather than wait. Fetches run on the
// copies' own context, 32 at a time: a reader that gives up (its query
// timed out) leaves them running, so that asking again finds them done.
// Copies are checked against the manifest's size and checksum before any
// reader sees them. Copies a previous process left in the directory are
// kept (their key, size and checksum are in their paths) and checked again
// before a reader first gets one: a copy is renamed into place without an
// fsync, so a crash may have damaged it, and a damaged one is fetched anew.
type LakeCopies struct {
	p   *pipelines.Pipeline
	dir string
	max int64
	log *slog.Logger

	ctx  context.Context // the fetches'; cancelled by Close
	stop context.CancelFunc
	wg   sync.WaitGroup
	slot chan struct{} // fetches and checks running

	reads     *prometheus.CounterVec
	bytesHeld prometheus.Gauge
	filesHeld prometheus.Gauge
	mu        sync.Mutex
	st        lakestore.Store // opened at the first request
	bytes     int64           // of every entry, fetched or being fetched
	entries   map[cacheKey]*lakeCopy
	order     list.List // of *lakeCopy, most recently asked for first
}

// lakeCopy is one file's local copy.
type lakeCopy struct {
	k    cacheKey
	path string
	pins int           // readers holding it
	done chan struct{} // closed once fetched or failed
	err  error         // why the fetch failed, set before done closes
	elem *list.Element
	// check is set on a copy a previous process left, until a reader asks
	// for it and it is checked (or fetched again).
	check bool
}

// ErrLakeCopiesFull is the error of a request whose files do not fit in
// the copies' bound; it names the bound as Limit.
var ErrLakeCopiesFull = errors.New("lake files do not fit in the local copies' bound")

// copiesFull is an ErrLakeCopiesFull with what was asked for.
type copiesFull struct{ msg string }

func (e copiesFull) Error() string { return e.msg }
func (e copiesFull) Unwrap() error { return ErrLakeCopiesFull }

// Limit names the pipeline key of the bound (SQL's errors name it).
func (e copiesFull) Limit() string { return "sql.lake_cache" }

// mib shows a size in MiB for messages.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// fetchesAtOnce bounds the fetches of all readers together.
const fetchesAtOnce = 32

// OpenLakeCopies returns the copies of p's lake (which must be on object
// storage) kept in dir, at most max bytes, with the copies a previous
// process left there. Their metrics go to reg (none when nil).
func OpenLakeCopies(p *pipelines.Pipeline, dir string, max int64, log *slog.Logger, reg prometheus.Registerer) (*LakeCopies, error) {
	if p.Lake.URL == "" {
		return nil, fmt.Errorf("lake: local copies of a lake in a directory: read its files where they are")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lake: the local copies' directory: %w", err)
	}
	c := &LakeCopies{p: p, dir: dir, max: max, log: log,
		slot: make(chan struct{}, fetchesAtOnce), entries: map[cacheKey]*lakeCopy{},
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sql_lake_copies_reads_total", Help: "Lake files on object storage SQL queries read, by whether a local copy was held (hit) or fetched (miss).",
		}, []string{"result"}),
		bytesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_sql_lake_copies_bytes", Help: "Bytes of the local copies of lake files SQL holds on disk (sql.lake_cache bounds them), those being fetched included.",
		}),
		filesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_sql_lake_copies_files", Help: "Local copies of lake files SQL holds on disk, those being fetched included.",
		}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.reads, c.bytesHeld, c.filesHeld} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("lake: registering the local copies' metrics: %w", err)
			}
		}
	}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("lake: the local copies in %s: %w", dir, err)
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// load takes the copies a previous process left in the directory, the
// most recently written first in line, and drops the oldest past the
// bound; temporary files and anything that is not a copy are removed.
func (c *LakeCopies) load() error {
	type left struct {
		lc       *lakeCopy
		modified time.Time
	}
	var found []left
	err := filepath.WalkDir(c.dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		k, ok := c.keyOf(path)
		info, ierr := de.Info()
		if !ok || ierr != nil || !de.Type().IsRegular() || info.Size() != k.size {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		found = append(found, left{&lakeCopy{k: k, path: path, done: make(chan struct{}), check: true}, info.ModTime()})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(found, func(a, b left) int { return a.modified.Compare(b.modified) })
	for _, f := range found {
		f.lc.elem = c.order.PushFront(f.lc)
		c.entries[f.lc.k] = f.lc
		c.bytes += f.lc.k.size
	}
	for e := c.order.Back(); e != nil && c.bytes > c.max; {
		lc := e.Value.(*lakeCopy)
		e = e.Prev()
		c.drop(lc)
	}
	c.gauge()
	return nil
}

// keyOf reads the key, size and checksum of the copy at path (the inverse
// of localPath); false for anything else, and for copies of files without
// a checksum, which could not be checked again.
func (c *LakeCopies) keyOf(path string) (cacheKey, bool) {
	rel, err := filepath.Rel(c.dir, path)
	if err != nil {
		return cacheKey{}, false
	}
	rel = filepath.ToSlash(rel)
	dir, name := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i+1], rel[i+1:]
	}
	base, ok := strings.CutSuffix(name, ".parquet")
	parts := strings.Split(base, "-")
	if !ok || len(parts) < 3 || dir == "" {
		return cacheKey{}, false
	}
	size, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	sum, serr := strconv.ParseUint(parts[len(parts)-1], 16, 32)
	if err != nil || serr != nil || sum == 0 {
		return cacheKey{}, false
	}
	k := cacheKey{dir + strings.Join(parts[:len(parts)-2], "-") + ".parquet", size, uint32(sum)}
	return k, c.localPath(k) == path
}

// Close stops the fetches and waits for them. The copies stay on disk
// until the next OpenLakeCopies of the directory.
func (c *LakeCopies) Close() {
	c.stop()
	c.wg.Wait()
	c.mu.Lock()
	if c.st != nil {
		lakestore.CloseIdle(c.st)
	}
	c.mu.Unlock()
}

// store opens the lake at the first request, so that object storage out
// of reach at start fails queries, not the process.
func (c *LakeCopies) store(ctx context.Context) (lakestore.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		st, err := OpenStore(ctx, c.p)
		if err != nil {
			return nil, err
		}
		c.st = st
	}
	return c.st, nil
}

// Files returns the local paths of copies of topic's live lake files
// (those of its committed manifest: together they hold every event of the
// lake once) whose period overlaps [from, to) (a zero bound is open),
// fetching those not held. The copies stay until release is called, which
// must be, once.
func (c *LakeCopies) Files(ctx context.Context, topic string, from, to time.Time) (paths []string, release func(), err error) {
	st, err := c.store(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := readManifest(ctx, st, topic)
	if err != nil {
		return nil, nil, err
	}
	want := filesBetween(m, from, to)
	var total int64
	for _, f := range want {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return nil, nil, fmt.Errorf("%w: the manifest of topic %s lists %q, a path outside the topic", ErrCorruptManifest, topic, f.Path)
		}
		total += f.Bytes
	}
	if total > c.max {
		what := "the lake of topic " + topic
		if !from.IsZero() || !to.IsZero() {
			what = "the part of the lake of topic " + topic + " the query's time bounds leave"
		}
		return nil, nil, copiesFull{fmt.Sprintf("%s is %s in %d files, more than sql.lake_cache (%s) may hold on disk: raise it, or bound _event_time in the query's WHERE",
			what, mib(total), len(want), mib(c.max))}
	}
	held, err := c.pin(topic, want)
	if err != nil {
		return nil, nil, err
	}
	release = func() { c.unpin(held) }
	for _, lc := range held {
		select {
		case <-lc.done:
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		}
		if lc.err != nil {
			release()
			return nil, nil, lc.err
		}
		paths = append(paths, lc.path)
	}
	return paths, release, nil
}

// pin takes the entries of files, starting the fetch of those not held,
// and makes room for them by dropping copies no reader holds.
func (c *LakeCopies) pin(topic string, files []fileEntry) ([]*lakeCopy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := make([]*lakeCopy, 0, len(files))
	var fetch, check []*lakeCopy
	for _, f := range files {
		k := cacheKey{topic + "/" + f.Path, f.Bytes, f.CRC32C}
		lc := c.entries[k]
		result := "hit"
		if lc == nil {
			result = "miss"
			lc = &lakeCopy{k: k, path: c.localPath(k), done: make(chan struct{})}
			lc.elem = c.order.PushFront(lc)
			c.entries[k] = lc
			c.bytes += f.Bytes
			fetch = append(fetch, lc)
		} else {
			c.order.MoveToFront(lc.elem)
			if lc.check {
				check = append(check, lc)
			}
		}
		c.reads.WithLabelValues(result).Inc()
		lc.pins++
		held = append(held, lc)
	}
	for e := c.order.Back(); e != nil && c.bytes > c.max; {
		lc := e.Value.(*lakeCopy)
		e = e.Prev()
		if lc.pins == 0 && (isClosed(lc.done) || lc.check) {
			c.drop(lc)
		}
	}
	if c.bytes > c.max {
		for _, lc := range held {
			lc.pins--
		}
		for _, lc := range fetch {
			c.forget(lc)
		}
		return nil, copiesFull{fmt.Sprintf("the lake files other queries are reading leave too little of sql.lake_cache (%s) for those of topic %s: retry, or raise it",
			mib(c.max), topic)}
	}
	c.gauge()
	for _, lc := range fetch {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.done(lc, c.fetchSlot(lc))
		}()
	}
	for _, lc := range check {
		lc.check = false
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			err := c.checkSlot(lc)
			if err != nil {
				c.log.Info("lake: a local copy left by a previous process fails its check; fetching it again", "file", lc.path, "err", err)
				err = c.fetchSlot(lc)
			}
			c.done(lc, err)
		}()
	}
	return held, nil
}

func (c *LakeCopies) unpin(held []*lakeCopy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lc := range held {
		lc.pins--
	}
}

// drop removes a fetched copy no reader holds.
func (c *LakeCopies) drop(lc *lakeCopy) {
	if err := os.Remove(lc.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("lake: removing a local copy", "file", lc.path, "err", err)
	}
	c.forget(lc)
}

// forget takes lc out of the entries; its bytes no longer count.
func (c *LakeCopies) forget(lc *lakeCopy) {
	if c.entries[lc.k] != lc {
		return
	}
	delete(c.entries, lc.k)
	c.order.Remove(lc.elem)
	c.bytes -= lc.k.size
	c.gauge()
}

// gauge shows what is held; c.mu is held.
func (c *LakeCopies) gauge() {
	c.bytesHeld.Set(float64(c.bytes))
	c.filesHeld.Set(float64(len(c.entries)))
}

// done publishes the outcome of lc's fetch or check; a failed copy is
// forgotten, so the next reader tries again.
func (c *LakeCopies) done(lc *lakeCopy, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		lc.err = fmt.Errorf("lake: fetching %s%s: %w", c.st.String(), lc.k.key, err)
		c.forget(lc)
	}
	close(lc.done)
}

// acquire takes one of the slots of fetches and checks running (given
// back by receiving from c.slot).
func (c *LakeCopies) acquire() error {
	select {
	case c.slot <- struct{}{}:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// checkSlot checks a copy a previous process left against its size and
// checksum.
func (c *LakeCopies) checkSlot(lc *lakeCopy) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer func() { <-c.slot }()
	f, err := os.Open(lc.path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if err := wrongSize(lc.path, lc.k.entry(), n); err != nil {
		return err
	}
	return wrongSum(lc.path, lc.k.entry(), h.Sum32())
}

// fetchSlot copies lc's file from the store, checked.
func (c *LakeCopies) fetchSlot(lc *lakeCopy) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer func() { <-c.slot }()
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(lc.path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(lc.path), "."+filepath.Base(lc.path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone already once renamed
	h := crc32.New(castagnoli)
	n, err := download(c.ctx, st, lc.k.key, io.MultiWriter(f, h))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := wrongSize(lc.k.key, lc.k.entry(), n); err != nil {
		return err
	}
	if err := wrongSum(lc.k.key, lc.k.entry(), h.Sum32()); err != nil {
		return err
	}
	return os.Rename(f.Name(), lc.path)
}

// downloader is a store that streams an object out without holding it
// whole (object storage): a copy of a large file then passes through
// neither memory nor a spill file.
type downloader interface {
	Download(ctx context.Context, key string, w io.Writer) (int64, error)
}

// download writes the object at key to w.
func download(ctx context.Context, st lakestore.Store, key string, w io.Writer) (int64, error) {
	if d, ok := st.(downloader); ok {
		return d.Download(ctx, key, w)
	}
	o, err := st.Open(ctx, key)
	if err != nil {
		return 0, err
	}
	defer o.Close()
	return io.Copy(w, io.NewSectionReader(o, 0, o.Size()))
}

// localPath is where the copy of k lives: its key's directories under the
// copies' directory, its name followed by its size and checksum (a file
// that ever came back under a name with other bytes would not collide).
func (c *LakeCopies) localPath(k cacheKey) string {
	dir, name := "", k.key
	if i := strings.LastIndexByte(k.key, '/'); i >= 0 {
		dir, name = k.key[:i], k.key[i+1:]
	}
	name = fmt.Sprintf("%s-%d-%08x.parquet", strings.TrimSuffix(name, ".parquet"), k.size, k.crc32)
	return filepath.Join(c.dir, filepath.FromSlash(dir), name)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
