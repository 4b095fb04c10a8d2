package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// maxMergeInputs bounds the files one merge reads at once (each with a
// batch of rows decoded, and on object storage the object downloaded);
// a period with more is merged over several passes.
const maxMergeInputs = 16

// mergeBatchRows is the batch size compaction reads its inputs in: a merge
// holds one batch per input.
const mergeBatchRows = 1024

// compactor merges the files of each period (hour, day or month: the
// topic's lake.partitioning) of one topic's lake into one file: whatever the
// partitions, flushes and processes that wrote them. A period is merged
// once it holds lake.compact.min_files files (not counting those much
// larger than the rest while it still gets events: unsettled), or two
// once the topic's events have moved a whole period past it. The manifest
// commit is the atomic step: a reader lists files from one manifest, so it
// reads either the old files or the merged one, never both and never
// neither.
// Replaced files are hidden at once (directory readers stop seeing them)
// and deleted after a grace period, and never while a reader in this
// process holds a manifest that lists them.
//
// With several processes, period P of a topic with N partitions is
// compacted by the owner of partition layout.seq(P) mod N (owns), and its
// commits are fenced by that partition's lease (fence) as the writer's
// are; correctness does not rest on it, since a merge commits only if
// every file it replaces is still live.
type compactor struct {
	tl      *topicLake
	logger  *slog.Logger
	now     func() time.Time
	cfg     pipelines.Compact
	grace   time.Duration
	metrics *metrics
	// fence returns the ownership under which this process compacts the
	// periods of a shard (a partition number), nil when another process
	// does; a nil func: this process compacts every period, unfenced.
	fence func(shard int) Fence
	// nudge asks for a pass soon (after a flush).
	nudge chan struct{}
	fw    *fileWriter
	// unhidden are replaced files (paths relative to the topic) whose
	// hiding failed, tried again by every pass.
	unhidden map[string]bool
	// settle is the rows under which a file never waits out an open
	// period's merges (unsettled); settleRows but in tests.
	settle int64
}

// settleRows is the size under which a file of an open period is always
// merged: rewriting 16,384 rows costs milliseconds, so holding such files
// back would only leave more files in the period.
const settleRows = 1 << 14

func newCompactor(tl *topicLake, logger *slog.Logger, now func() time.Time, cfg pipelines.Compact, grace time.Duration, m *metrics) *compactor {
	return &compactor{tl: tl, logger: logger, now: now, cfg: cfg, grace: grace, metrics: m, nudge: make(chan struct{}, 1), fw: newFileWriter(tl.ls, tl.best), unhidden: map[string]bool{}, settle: settleRows}
}

// poke asks for a pass soon; it never blocks.
func (c *compactor) poke() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// shard returns the partition whose owner compacts the period holding
// start.
func (tl *topicLake) shard(start int64) int {
	n := int64(max(tl.topic.Partitions, 1))
	i := tl.layout.seq(tl.layout.start(start)) % n
	if i < 0 {
		i += n
	}
	return int(i)
}

// run compacts every cfg.Interval (by the injected clock, looked at every
// poll) and soon after a nudge, until ctx is done.
func (c *compactor) run(ctx context.Context, poll time.Duration) {
	if c.cfg.Interval <= 0 || c.cfg.MinFiles < 2 {
		return
	}
	next := c.now().Add(c.cfg.Interval.D())
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.nudge:
		case <-t.C:
			if c.now().Before(next) {
				continue
			}
		}
		next = c.now().Add(c.cfg.Interval.D())
		if _, err := c.compact(ctx); err != nil && ctx.Err() == nil {
			c.logger.Error("lake: compaction failed", "topic", c.tl.topic.Name, "err", err)
		}
	}
}

// mine tells whether this process compacts the periods of shard, looking
// its fence up once a pass (fences).
func (c *compactor) mine(fences map[int]Fence, shard int) bool {
	if c.fence == nil {
		return true
	}
	fc, ok := fences[shard]
	if !ok {
		fc = c.fence(shard)
		fences[shard] = fc
	}
	return fc != nil
}

// compact does one pass: merges every period due (up to maxMergeInputs
// files of each), takes out the periods past the topic's lake.retention
// (expire), then deletes replaced files whose grace is over. It returns how
// many merges it committed.
func (c *compactor) compact(ctx context.Context) (int, error) {
	// Not while this process recovers a partition it takes over: recovery
	// removes files no manifest lists yet, such as a merge's output.
	c.tl.work.Lock()
	defer c.tl.work.Unlock()
	for path := range c.unhidden {
		c.hide(ctx, path)
	}
	m := c.tl.ms.snapshot()
	newest, seen := int64(0), false
	for _, ps := range m.Partitions {
		if ps.Rows > 0 && (!seen || ps.MaxTime > newest) {
			newest, seen = ps.MaxTime, true
		}
	}
	// The shards' fences as the pass starts: a merge commits only under
	// the ownership its inputs were chosen under.
	fences := map[int]Fence{}
	// The periods due and their files. Only a period two live files or
	// more share can be due (a closed one needs two, an open one
	// min_files), so the pass looks at those alone: after a flush, a lake
	// of years of hours merged into one file each has a handful.
	groups := map[int64][]fileEntry{}
	var due []int64
	var fs []fileEntry
	cutoff, retained := c.retainedFrom()
	for start := range m.crowdedStarts() {
		if c.tl.layout.start(start) != start {
			continue // written under another partitioning (below)
		}
		if retained && c.tl.layout.end(start) <= cutoff {
			continue // past the topic's lake.retention: expire takes it out
		}
		if !c.mine(fences, c.tl.shard(start)) {
			continue // compacted by another process
		}
		fs = fs[:0]
		for f := range m.from(start) {
			if f.Start != start {
				break
			}
			if f.End != c.tl.layout.end(start) {
				// Written under another partitioning: its offset ranges
				// speak of its own period, so merged with files of
				// another, they could claim events held by files left
				// out of the merge.
				continue
			}
			fs = append(fs, *f)
		}
		if seen && c.tl.layout.end(c.tl.layout.end(start)) <= newest {
			if len(fs) < 2 {
				continue
			}
		} else if len(fs) < c.cfg.MinFiles {
			continue
		} else if fs = unsettled(fs, c.settle); len(fs) < c.cfg.MinFiles {
			continue
		}
		groups[start] = slices.Clone(fs)
		due = append(due, start)
	}
	n := 0
	for _, start := range due {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		fs := groups[start]
		// The oldest files first (the order of a merge's inputs).
		slices.SortFunc(fs, func(a, b fileEntry) int { return cmp.Or(cmp.Compare(a.Added, b.Added), cmp.Compare(a.Path, b.Path)) })
		err := c.merge(ctx, m, start, fs[:min(len(fs), maxMergeInputs)], fences[c.tl.shard(start)])
		if errors.Is(err, errStale) {
			// Another process changed the period meanwhile; the next pass
			// looks again.
			c.logger.Debug("lake: compaction skipped a period that changed", "topic", c.tl.topic.Name, "err", err)
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if _, err := c.expire(ctx, fences); err != nil {
		return n, err
	}
	return n, c.purge(ctx)
}

// unsettled returns the files of a period that still gets events that its
// next merge takes: the smallest ones, up to the largest file that holds at
// most twice the rows of the smaller ones together or fewer than minRows;
// the larger files wait.
// Merging every flush's file into the period's largest would rewrite the
// whole period every min_files flushes, which is quadratic in the flushes
// a period gets (a busy hour, or a month: 8,640 flushes at max_age 5m,
// each row rewritten ~1,400 times); a file that waits until the smaller
// ones add up to half its rows grows by half at least each time it is
// rewritten, so each row is rewritten a few times (~11 for that month,
// the merge at its close included). Once the period is closed all its
// files merge.
func unsettled(fs []fileEntry, minRows int64) []fileEntry {
	by := slices.Clone(fs)
	slices.SortFunc(by, func(a, b fileEntry) int { return cmp.Or(cmp.Compare(a.Rows, b.Rows), cmp.Compare(a.Path, b.Path)) })
	n := 1
	var rows int64
	for i, f := range by {
		if i > 0 && (f.Rows < minRows || f.Rows <= 2*rows) {
			n = i + 1
		}
		rows += f.Rows
	}
	return by[:min(n, len(by))]
}

// errStale is what a merge whose inputs are no longer all live fails with.
var errStale = errors.New("lake: files compacted meanwhile")

// merge replaces files (of the period at start) by one file holding their
// rows in event-time order, named c<version>.parquet after the
// manifest version it was made from.
func (c *compactor) merge(ctx context.Context, m *manifest, start int64, files []fileEntry, fence Fence) error {
	out := fileEntry{
		Path:      c.tl.layout.path(start) + "/c" + strconv.FormatInt(m.Version, 10) + ".parquet",
		Start:     start,
		End:       c.tl.layout.end(start),
		MinTime:   files[0].MinTime,
		MaxTime:   files[0].MaxTime,
		Compacted: true,
	}
	var ranges []offsetRange
	for _, f := range files {
		ranges = append(ranges, f.Ranges...)
		out.Rows += f.Rows
		out.MinTime = min(out.MinTime, f.MinTime)
		out.MaxTime = max(out.MaxTime, f.MaxTime)
		// Recomputation finds late events by the version that brought
		// them; the merged file keeps the newest.
		out.Added = max(out.Added, f.Added)
	}
	out.Ranges = joinRanges(ranges)
	shard := c.tl.shard(start)
	for attempt := 0; ; attempt++ {
		err := c.write(ctx, &out, files)
		if errors.Is(err, lakestore.ErrExists) && attempt == 0 {
			// Left by a merge of this period that failed or was cut short
			// (this process compacts the period now): replace it, unless
			// this process no longer compacts it.
			if ferr := c.tl.mayReplace(out.Path, map[int]Fence{shard: fence}); ferr != nil {
				return ferr
			}
			if derr := c.tl.st.Delete(ctx, c.tl.key(out.Path)); derr != nil {
				return derr
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("lake: compacting %s: %w", out.Path, err)
		}
		break
	}
	_, err := c.tl.ms.commit(ctx, func(m *manifest) (*delta, error) {
		if err := fenced(m.partition(shard), fence, c.tl.topic.Name); err != nil {
			return nil, err
		}
		d := &delta{Add: []fileEntry{out}}
		for _, f := range files {
			if !m.isLive(f.Path) {
				return nil, fmt.Errorf("%w: %s is no longer live", errStale, f.Path)
			}
			d.Remove = append(d.Remove, f.Path)
		}
		return d, nil
	})
	if errors.Is(err, errCommitUnknown) && c.tl.ms.landed(out.Path) {
		err = nil // the merged file is live: this commit listed it
	}
	if err != nil {
		if !errors.Is(err, errCommitUnknown) {
			c.deleteKeys(c.tl.key(out.Path))
		}
		return err
	}
	// Out of the dataset now; hide them from directory readers, also when
	// the process is stopping (a soft stop leaves no replaced file in
	// sight). What fails is tried again by the next pass, and what a crash
	// cuts short by recovery.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, f := range files {
		c.hide(hctx, f.Path)
		// The merge's second pass read it from the cache; no one else will.
		c.tl.cache.drop(c.tl.key(f.Path), f)
	}
	c.metrics.compactions.WithLabelValues(c.tl.topic.Name).Inc()
	c.logger.Debug("lake: compacted", "topic", c.tl.topic.Name, "file", out.Path, "inputs", len(files), "rows", out.Rows)
	return nil
}

// hide moves a replaced file (path relative to the topic) to its hidden
// name; on failure it is remembered for the next pass.
func (c *compactor) hide(ctx context.Context, path string) {
	key := c.tl.key(path)
	err := c.tl.st.Rename(ctx, key, replacedName(key))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		delete(c.unhidden, path)
		return
	}
	c.logger.Warn("lake: hiding a replaced file", "file", key, "err", err)
	c.unhidden[path] = true
}

// write writes the merged file: the inputs' rows merged in event-time
// order, ties by partition and offset (each input is in that order; one
// written before files were sorted, in partition and offset order, leaves
// the merged file partly unsorted, which costs bytes, not correctness).
func (c *compactor) write(ctx context.Context, out *fileEntry, files []fileEntry) error {
	fw := c.fw
	// A first pass over the merged rows chooses the file's encodings.
	if err := c.mergeRows(ctx, files, &surveySink{fw: fw}); err != nil {
		fw.abandon()
		return err
	}
	w, err := c.tl.st.Create(ctx, c.tl.key(out.Path))
	if err != nil {
		fw.abandon()
		return err
	}
	if err := fw.start(w, out.Ranges); err != nil {
		w.Abort()
		return err
	}
	err = c.mergeRows(ctx, files, fw)
	var sum uint32
	if err == nil {
		sum, err = fw.finish()
	}
	if err != nil {
		fw.abandon()
		w.Abort()
		return err
	}
	n, err := c.tl.commitFile(ctx, w, out.Path, c.logger)
	if err != nil {
		return err
	}
	out.Bytes, out.CRC32C = n, sum
	return nil
}

// mergeInput is one input of a merge: its batches pulled one at a time.
type mergeInput struct {
	next func() (*scanBatch, bool)
	stop func()
	err  error
	b    *scanBatch
	i    int
}

// advance moves to the input's next row, pulling its next batch when the
// current one is used up; it reports whether there is a row.
func (in *mergeInput) advance() bool {
	in.i++
	for in.b == nil || in.i >= len(in.b.Events) {
		b, ok := in.next()
		if !ok {
			in.b = nil
			return false
		}
		in.b, in.i = b, 0
	}
	return true
}

// rowSink takes merged rows: a row's memory stays valid until the next
// drain.
type rowSink interface {
	add(ev *event.Event, partition int32, offset int64) error
	drain() error
}

// surveySink hands merged rows to a fileWriter's survey.
type surveySink struct {
	fw      *fileWriter
	pending []event.Event
}

func (s *surveySink) add(ev *event.Event, _ int32, _ int64) error {
	s.pending = append(s.pending, *ev)
	return nil
}

func (s *surveySink) drain() error {
	s.fw.observe(s.pending)
	clear(s.pending)
	s.pending = s.pending[:0]
	return nil
}

// mergeRows hands the rows of files to fw, merged in event-time order.
func (c *compactor) mergeRows(ctx context.Context, files []fileEntry, fw rowSink) error {
	inputs := make([]*mergeInput, len(files))
	pf := c.tl.prefetchFiles(ctx, files)
	defer pf.stop()
	for i := range files {
		in := &mergeInput{i: -1}
		seq := func(yield func(*scanBatch) bool) {
			in.err = pf.scanFile(ctx, i, scanOptions{BatchRows: mergeBatchRows}, func(b *scanBatch) error {
				if !yield(b) {
					return errStopped
				}
				return nil
			})
		}
		in.next, in.stop = iter.Pull(seq)
		inputs[i] = in
	}
	defer func() {
		for _, in := range inputs {
			in.stop()
		}
	}()
	// live are the inputs with a current row, kept sorted by it; each pull
	// of a new batch reuses the input's memory, so rows handed to fw are
	// drained before any input moves to its next batch.
	var live []*mergeInput
	for _, in := range inputs {
		if in.advance() {
			live = append(live, in)
		} else if in.err != nil {
			return in.err
		}
	}
	less := func(a, b *mergeInput) int {
		return cmp.Or(cmp.Compare(a.b.Events[a.i].Time, b.b.Events[b.i].Time),
			cmp.Compare(a.b.Parts[a.i], b.b.Parts[b.i]), cmp.Compare(a.b.Offsets[a.i], b.b.Offsets[b.i]))
	}
	slices.SortFunc(live, less)
	for len(live) > 0 {
		in := live[0]
		if err := fw.add(&in.b.Events[in.i], in.b.Parts[in.i], in.b.Offsets[in.i]); err != nil {
			return err
		}
		if in.i+1 >= len(in.b.Events) {
			if err := fw.drain(); err != nil {
				return err
			}
		}
		if !in.advance() {
			if in.err != nil {
				return in.err
			}
			live = live[1:]
			continue
		}
		// Move the input to its place (usually it stays first).
		for k := 1; k < len(live) && less(live[k-1], live[k]) > 0; k++ {
			live[k-1], live[k] = live[k], live[k-1]
		}
	}
	return fw.drain()
}

// errStopped ends a scan whose reader stopped pulling.
var errStopped = errors.New("lake: scan stopped")

func (c *compactor) deleteKeys(keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.tl.st.Delete(ctx, keys...); err != nil {
		c.logger.Warn("lake: removing files", "topic", c.tl.topic.Name, "err", err)
	}
}

// purge deletes replaced files (of the periods this process compacts)
// whose grace period is over and that no reader in this process still
// needs, then forgets them in the manifest.
func (c *compactor) purge(ctx context.Context) error {
	m := c.tl.ms.snapshot()
	oldest := c.tl.ms.oldestPin()
	now := c.now()
	var gone, keys []string
	for _, r := range m.Replaced {
		if now.Sub(time.Unix(r.At, 0)) < c.grace || (oldest >= 0 && oldest < r.Version) {
			continue
		}
		if c.fence != nil {
			if start, ok := periodOfPath(r.Path); !ok || c.fence(c.tl.shard(start)) == nil {
				continue
			}
		}
		gone = append(gone, r.Path)
		// The visible name too, in case hiding it never succeeded.
		keys = append(keys, replacedName(c.tl.key(r.Path)), c.tl.key(r.Path))
		delete(c.unhidden, r.Path)
	}
	if len(gone) == 0 {
		return nil
	}
	if err := c.tl.st.Delete(ctx, keys...); err != nil {
		return err
	}
	_, err := c.tl.ms.commit(ctx, func(m *manifest) (*delta, error) {
		replaced := map[string]bool{}
		for _, r := range m.Replaced {
			replaced[r.Path] = true
		}
		d := &delta{}
		for _, p := range gone {
			if replaced[p] {
				d.Purge = append(d.Purge, p)
			}
		}
		return d, nil
	})
	return err
}
