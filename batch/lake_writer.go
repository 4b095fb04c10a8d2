package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// lakeConsumer is the consumer name under which lake writers commit.
const lakeConsumer = "lake"

// A burst is burstRows rows or more read within burstWindow (a backfill, a
// client's batch of history). When a partition has read everything the
// log holds (nothing new for a poll interval) during a burst, the buffer is
// written at once instead of after max_age, so that the lake catches up
// within seconds of the burst. A steady stream that fast never lets a
// reader wait a whole poll interval, and a slower one waits for max_age.
const (
	burstRows   = 1000
	burstWindow = 10 * time.Second
)

// A burst that arrives roughly in time order (a backfill in the order it
// happened, a day at a time) is written as it arrives instead of all at
// its end: once the buffer holds earlyRows rows, two thirds of them in at
// least earlyPeriods periods that got none of the last quietRows rows read
// (which leaves room for the partitions' readers to be some days apart),
// it is flushed. Those periods' files are as full as waiting would
// make them; the few periods still being filled get a second file, which
// compaction merges. A burst in no order (every period still filling) or a
// live stream (one or two periods) is not flushed early. It is checked
// every earlyCheck rows read.
const (
	earlyRows    = 32768
	quietRows    = 16384
	earlyPeriods = 8
	earlyCheck   = 4096
)

// A flush encodes up to flushEncoders files at a time (CPU, and the memory
// of an encoder: its page buffers and the period's sort index), and has up
// to flushCommits files being made durable at a time: a commit waits for
// fsync or the object store, and a file system's journal makes many
// concurrent fsyncs cost about what one does, so a backfill's thousands of
// small files (an hourly lake) are not written one fsync after another.
// Only files of up to smallFile bytes wait for their commit without their
// encoder (an upload to object storage holds such a file in memory), so
// what waits is bounded by flushCommits × smallFile besides the encoders.
const (
	flushEncoders = 4
	flushCommits  = 32
	smallFile     = 1 << 20
)

// lakeLog is what a lake writer needs of the log: read a partition,
// report how far it read (for lag) and register as a consumer. It commits
// its position, once that is durable, through the partition's lease.
type lakeLog interface {
	Reader(ctx context.Context, topic string, partition int, from broker.Position) (*broker.Reader, error)
	Register(ctx context.Context, consumer, topic string) error
	Progress(consumer, topic string, partition int, offset int64)
}

// Fence is the ownership under which a process writes a partition of the
// lake (on a cluster, the partition's lease). A commit that moves a
// partition forward is refused unless the fence is still valid and no
// commit of a higher epoch has been made for the partition; the commit
// records the epoch. Nil means the process is the only writer.
type Fence interface {
	Epoch() uint64
	Valid() bool
}

// partLease is a partition of the lake owned by this process
// (*broker.Lease): its epoch is the partition's Fence in the manifest, and
// it records the writer's position in the log (for lag and retention),
// fenced by the same epoch.
type partLease interface {
	Fence
	Committed(topic string) (offset int64, checkpoint string, ok bool)
	Commit(ctx context.Context, topic string, offset, eventTime int64, checkpoint string) error
}

var _ partLease = (*broker.Lease)(nil)

// errLost stops a writer whose partition another process has taken.
var errLost = errors.New("lake: the partition moved to another process")

// topicLake is one topic's lake: its storage, schema, layout and
// manifest. The lake writer, compaction and readers of the topic share it.
type topicLake struct {
	topic *pipelines.Topic
	st    lakestore.Store
	ls    *lakeSchema
	ms    *manifestStore
	// layout cuts event time into the periods files hold: hours, days or
	// months (topics[].lake.partitioning).
	layout layout
	// scan reads one lake file (scanParquet); benchmarks swap in another
	// reader to compare them on the same workload.
	scan func(ctx context.Context, o lakestore.Object, name string, schema event.Schema, fe fileEntry, opts scanOptions, fn func(*scanBatch) error) error
	// work keeps a compaction pass and the recovery of partitions taken
	// over apart in this process.
	work sync.Mutex
	// recoveries coalesces the recoveries of partitions asked for at
	// once.
	recoveries recoveries
	// best lends the topic's file writers zstd's best level: the batch
	// layer shares one set among all its topics (nil: each writer makes
	// its own).
	best *bestEncoders
	// cache keeps files read from object storage for later reads (nil:
	// none; see fileCache).
	cache *fileCache
}

func openTopicLake(ctx context.Context, st lakestore.Store, t *pipelines.Topic, now func() time.Time, logger *slog.Logger) (*topicLake, error) {
	ls, err := newLakeSchema(t.Schema)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", t.Name, err)
	}
	ms, err := openManifestStore(ctx, st, t.Name, now, logger)
	if err != nil {
		return nil, err
	}
	return &topicLake{topic: t, st: st, ls: ls, ms: ms, layout: layoutOf(t.Lake.Partitioning), scan: scanParquet}, nil
}

// mayReplace tells whether this process may delete the file at path
// (relative to the topic), which holds a name it needs: only when the
// manifest does not list it and every fence still holds with no later
// epoch committed for its partition. A new owner records its epoch in the
// manifest before it writes anything, so a writer the partitions moved
// away from (cut off, not stopped yet) never deletes the new owner's file.
func (tl *topicLake) mayReplace(path string, fences map[int]Fence) error {
	m := tl.ms.snapshot()
	if m.isLive(path) {
		return fmt.Errorf("%w: %s/%s is in the manifest already", errLost, tl.topic.Name, path)
	}
	for p, f := range fences {
		if err := fenced(m.partition(p), f, tl.topic.Name); err != nil {
			return err
		}
	}
	return nil
}

// key returns the storage key of a file path relative to the topic.
func (tl *topicLake) key(path string) string { return tl.topic.Name + "/" + path }

// partWriter is what a topic writer keeps of one partition it reads.
type partWriter struct {
	lease partLease
	// stop ends the partition's reader; gone is set when a flush found the
	// partition taken by another process (its rows are not flushed again).
	stop context.CancelFunc
	gone bool
	// [first, end) are the offsets read into the buffer: first is the
	// manifest's Next when the buffer's part of the partition began.
	first, end int64
	ingest     int64 // ingest time of the last entry read
	eventTime  int64 // event time of the last event read
	rows       int64 // rows in the buffer
	maxTime    int64 // newest event time in the buffer
	committed  int64 // the offset last committed to the log
	// tidy is the recovery of the partition's files that runs while its
	// reader starts (nil: done before); none of its rows is flushed
	// before it ends.
	tidy *tidying
}

// tidying is a recovery of a partition's files under way beside its
// reader. Recovery lists the topic's whole lake (seconds for a lake of
// 100,000 files on object storage), so a partition taken over is
// read from the log meanwhile instead of after; its rows wait for the
// recovery before they are flushed, because until then the directory may
// still show a previous owner's files of the same offsets (readers of the
// directory would count those events twice), and they are dropped if the
// recovery fails (the partition is then taken again and read from the
// manifest).
type tidying struct {
	done chan struct{}
	err  error // set before done is closed
}

// pending tells whether the recovery is still under way.
func (td *tidying) pending() bool {
	if td == nil {
		return false
	}
	select {
	case <-td.done:
		return false
	default:
		return true
	}
}

// failed is the recovery's error once it is over (nil while it runs).
func (td *tidying) failed() error {
	if td == nil || td.pending() {
		return nil
	}
	return td.err
}

// topicWriter copies the partitions of one topic that this process owns
// from the log into the lake. Every partition has a reader that decodes
// entries into one buffer shared by the topic's partitions; a flush writes
// the whole buffer as one file per event-time period (holding the rows of
// every partition that has some there, each partition's offsets in one
// range) and commits the files and every partition's new Next in one
// manifest commit. So a backfill that lands in thousands of hours becomes
// one file per hour, not one per hour and partition, and the number of
// flushes does not grow with the number of partitions.
//
// A flush is due when the buffer holds lake.roll.max_rows rows, when its
// oldest row is lake.roll.max_age old, when the process's lake buffers
// pass half of lake.buffer (the largest is flushed), when a partition
// catches up with the log while the buffer holds a burst (burstRows), when
// a burst arriving in time order has left most of the buffer's periods
// behind (earlyRows), and when a partition is given back (or the process
// stops). Readers wait
// while the buffers are at lake.buffer.
type topicWriter struct {
	tl      *topicLake
	log     lakeLog
	logger  *slog.Logger
	now     func() time.Time
	roll    pipelines.LakeRoll
	poll    time.Duration
	metrics *metrics
	budget  *memBudget
	// flushed is told of every flush committed (compaction's cue: the
	// flush may have added a file to a period that had some, or moved the
	// topic's newest event time past periods that now count as closed);
	// nil: nobody listens.
	flushed func()

	flushMu sync.Mutex // one flush at a time
	due     chan struct{}

	mu     sync.Mutex
	buf    *rowBuffer
	opened time.Time // when the buffer got its first row
	parts  map[int]*partWriter
	// gen is bumped when a flush failed: every reader then starts again
	// from the manifest (the buffer was dropped).
	gen int64
	// Rows read in the current burstWindow (since winStart) and in the
	// one before it.
	winStart        time.Time
	winRows, before int64

	// encoders are the file writers a flush encodes with, taken and given
	// back by its commits.
	encoders chan *fileWriter
}

func newTopicWriter(tl *topicLake, log lakeLog, logger *slog.Logger, now func() time.Time, roll pipelines.LakeRoll,
	poll time.Duration, m *metrics, budget *memBudget) *topicWriter {
	tw := &topicWriter{tl: tl, log: log, logger: logger, now: now, roll: roll, poll: poll, metrics: m, budget: budget,
		due: make(chan struct{}, 1), buf: newRowBuffer(tl.topic.Schema), parts: map[int]*partWriter{}}
	tw.encoders = make(chan *fileWriter, flushEncoders)
	for range flushEncoders {
		tw.encoders <- newFileWriter(tl.ls, tl.best)
	}
	budget.register(tw)
	return tw
}

// requestFlush asks the flusher for a flush (it never blocks).
func (tw *topicWriter) requestFlush() {
	select {
	case tw.due <- struct{}{}:
	default:
	}
}

// bufferedBytes is the size of the buffer, for the memory budget's choice.
func (tw *topicWriter) bufferedBytes() int64 {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.buf.bytes
}

// run flushes when a flush is due until ctx is done. A failed flush drops
// the buffer and starts every reader again from the manifest, after a
// pause that doubles up to 30 s while flushes keep failing.
func (tw *topicWriter) run(ctx context.Context) {
	t := time.NewTicker(tw.poll)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tw.due:
		case <-t.C:
			tw.mu.Lock()
			old := tw.buf.rows > 0 && tw.now().Sub(tw.opened) >= tw.roll.MaxAge.D()
			tw.mu.Unlock()
			if !old {
				continue
			}
		}
		if err := tw.flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if lost := lostPartitions(err); len(lost) > 0 {
				// Those partitions' readers stopped; the others read
				// again from the manifest and flush at once, without a
				// pause.
				tw.logger.Warn("lake: partitions taken by another process left out of the flush; reading the others again", "topic", tw.tl.topic.Name,
					"partitions", lost, "err", err)
				continue
			}
			fails++
			b := retry.Backoff{Base: tw.poll, Cap: 30 * time.Second}
			tw.logger.Error("lake: flush failed; reading again from the manifest", "topic", tw.tl.topic.Name, "err", err, "pause", b.Delay(fails))
			if b.Wait(ctx, fails) != nil {
				return
			}
			continue
		}
		fails = 0
	}
}

// attach reads partition part into the buffer until ctx is done (a soft
// stop, or the partition moving to another process), then flushes what it
// read and lets go of the partition. The caller has recorded the lease in
// the manifest (takeOver) first. The partition's files are recovered
// (recoverPartition) while its reader starts: nothing of it is flushed
// before that ends, and if it fails the reader stops and attach returns
// its error. Once the lease is lost, nothing this writer read of the
// partition is committed: the new owner reads it again from the manifest.
func (tw *topicWriter) attach(ctx context.Context, part int, lease partLease) error {
	topic := tw.tl.topic.Name
	next := tw.tl.ms.snapshot().partition(part).Next
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	td := &tidying{done: make(chan struct{})}
	mine := &partWriter{lease: lease, stop: stop, first: next, end: next, committed: -1, tidy: td}
	tw.mu.Lock()
	if tw.parts[part] != nil {
		tw.mu.Unlock()
		return fmt.Errorf("%w: %s/%d", errAttached, topic, part)
	}
	tw.parts[part] = mine
	tw.mu.Unlock()
	go func() {
		defer close(td.done)
		if td.err = tw.tl.recoverPartition(ctx, tw.logger, part, lease, true); td.err != nil {
			stop()
		}
	}()
	defer func() { <-td.done }()
	// The manifest, not the committed offset, says what the lake holds;
	// the commit can lag it by one flush after a crash.
	if committed, _, ok := lease.Committed(topic); !ok || committed != next {
		if ok && committed > next {
			tw.logger.Warn("lake: committed offset is past the lake's manifest; rewriting from the manifest",
				"topic", topic, "partition", part, "committed", committed, "manifest_next", next)
		}
		tw.report(ctx, part, next, 0)
	}
	// What is read goes into the buffer, durable only once flushed: the
	// read position shows a writer that keeps up, the commit what is safe.
	tw.log.Progress(lakeConsumer, topic, part, next)
	err := tw.read(ctx, part)
	// What was read goes into the lake before the partition is let go.
	sctx := context.WithoutCancel(ctx)
	ferr := tw.flush(sctx)
	<-td.done
	tw.mu.Lock()
	pw := mine
	gone := pw.gone
	tw.mu.Unlock()
	if ferr == nil && !gone && td.err == nil && pw.committed != pw.first && lease.Valid() {
		tw.report(sctx, part, pw.first, pw.eventTime)
	}
	tw.mu.Lock()
	if tw.parts[part] == mine {
		delete(tw.parts, part)
		tw.buf.drop(part) // rows a failed flush could not commit
	}
	tw.mu.Unlock()
	if td.err != nil {
		// Nothing of the partition was flushed: its next run reads it
		// again from the manifest.
		return errors.Join(err, ferr, fmt.Errorf("lake: recovering %s/%d: %w", topic, part, td.err))
	}
	if gone {
		err = errors.Join(err, &partLost{part: part, msg: fmt.Sprintf("%v: %s/%d: a flush found the partition taken", errLost, topic, part)})
	}
	if errors.Is(err, errLost) || errors.Is(ferr, errLost) {
		return errors.Join(err, ferr)
	}
	if ferr == nil && lease.Valid() {
		// Still the partition's owner, and no longer writing it nor
		// compacting its periods (compaction looks for its fence in
		// tw.parts, and a pass under way finishes first): leave what a
		// reader of the directory sees exact. Files replaced by a merge
		// whose hiding failed are hidden, and the files of a flush or
		// merge whose commit failed and whose removal failed too are
		// removed, as recovery does on start.
		cctx, cancel := context.WithTimeout(sctx, time.Minute)
		defer cancel()
		if cerr := tw.tl.recoverPartition(cctx, tw.logger, part, lease, false); cerr != nil {
			tw.logger.Warn("lake: tidying a partition given back; its next owner does it", "topic", topic, "partition", part, "err", cerr)
		}
	}
	return ferr
}

// fenceOf returns the lease under which this process writes partition
// part, or nil when it does not write it.
func (tw *topicWriter) fenceOf(part int) Fence {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if pw := tw.parts[part]; pw != nil && pw.lease != nil && !pw.tidy.pending() && pw.tidy.failed() == nil {
		return pw.lease
	}
	return nil
}

// takeOver records the partition's new owner in the manifest before
// anything is written or deleted: from then on no commit of a previous
// owner (one that does not know yet that it lost the partition) is
// accepted, so the files it leaves can be removed safely.
func (tw *topicWriter) takeOver(ctx context.Context, part int, fence Fence) error {
	_, err := tw.tl.ms.commit(ctx, func(m *manifest) (*delta, error) {
		ps := m.partition(part)
		if err := fenced(ps, fence, tw.tl.topic.Name); err != nil {
			return nil, err
		}
		if ps.Epoch == fence.Epoch() {
			return nil, nil
		}
		ps.Epoch = fence.Epoch()
		return &delta{Partitions: []partitionState{ps}}, nil
	})
	return err
}

// read reads partition part into the buffer until ctx is done. Reader
// failures (a NATS node lost) resume where the buffer ends; a failed
// flush makes it resume from the manifest (the buffer was dropped).
func (tw *topicWriter) read(ctx context.Context, part int) error {
	topic := tw.tl.topic.Name
	backoff := retry.Backoff{Base: tw.poll, Cap: 30 * time.Second}
	fails := 0
	for ctx.Err() == nil {
		tw.mu.Lock()
		gen, from := tw.gen, tw.parts[part].end
		tw.mu.Unlock()
		r, err := tw.log.Reader(ctx, topic, part, broker.FromOffset(from))
		if err == nil {
			err = tw.readFrom(ctx, r, part, gen)
			r.Close()
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errRestart):
			fails = 0
			continue
		}
		fails++
		tw.logger.Error("lake: reading the log failed; reading again", "topic", topic, "partition", part, "err", err, "pause", backoff.Delay(fails))
		if backoff.Wait(ctx, fails) != nil {
			return nil
		}
	}
	return nil
}

// errRestart makes a reader start again from its partition's end (after a
// failed flush reset it to the manifest).
var errRestart = errors.New("lake: restart")

func (tw *topicWriter) readFrom(ctx context.Context, r *broker.Reader, part int, gen int64) error {
	topic := tw.tl.topic.Name
	for {
		ectx, cancel := context.WithTimeout(ctx, tw.poll)
		e, err := r.Next(ectx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			tw.idle()
			continue
		case errors.Is(err, broker.ErrCorruptEntry), errors.Is(err, broker.ErrSchemaMismatch):
			// The entry's events cannot be decoded, so they can never reach
			// the lake; stopping here would stop the lake for good.
			tw.logger.Error("lake: skipping an entry that cannot be decoded", "topic", topic, "partition", part, "err", err)
			tw.metrics.skipped.WithLabelValues(topic).Inc()
			continue
		default:
			return err
		}
		if err := tw.budget.wait(ctx); err != nil {
			return err
		}
		if err := tw.add(part, gen, &e); err != nil {
			return err
		}
	}
}

// add puts an entry's events not yet in the lake or the buffer into the
// buffer.
func (tw *topicWriter) add(part int, gen int64, e *broker.Entry) error {
	tw.mu.Lock()
	if tw.gen != gen {
		tw.mu.Unlock()
		return errRestart
	}
	pw := tw.parts[part]
	if pw == nil || pw.gone {
		tw.mu.Unlock()
		return fmt.Errorf("%w: %s/%d", errLost, tw.tl.topic.Name, part)
	}
	buf := tw.buf
	before, rowsBefore := buf.bytes, buf.rows
	for i := range e.Events {
		off := e.Offset + int64(i)
		if off < pw.end {
			continue // already in the lake or in the buffer
		}
		ev := &e.Events[i]
		buf.add(tw.tl.layout.start(ev.Time), part, off, ev)
		if pw.rows == 0 || ev.Time > pw.maxTime {
			pw.maxTime = ev.Time
		}
		pw.rows++
		pw.end = off + 1
		pw.eventTime = ev.Time
	}
	if e.End() > pw.end {
		// Offsets skipped by the log (retention) are covered by this flush.
		pw.end = e.End()
	}
	pw.ingest = e.Ingest
	if rowsBefore == 0 && buf.rows > 0 {
		tw.opened = tw.now()
	}
	tw.count(buf.rows - rowsBefore)
	full := buf.rows >= int64(tw.roll.MaxRows) || tw.settled(rowsBefore)
	grown := buf.bytes - before
	read := pw.end
	tw.mu.Unlock()
	tw.log.Progress(lakeConsumer, tw.tl.topic.Name, part, read)
	if tw.budget.take(grown) {
		tw.budget.pressure()
	}
	if full {
		tw.requestFlush()
	}
	return nil
}

// settled tells whether the buffer, which held rowsBefore rows before the
// latest entry, holds a burst to be flushed before its end (earlyRows).
// The caller holds tw.mu.
func (tw *topicWriter) settled(rowsBefore int64) bool {
	buf := tw.buf
	if buf.rows < earlyRows || buf.rows/earlyCheck == rowsBefore/earlyCheck || tw.winRows+tw.before < burstRows {
		return false
	}
	rows, periods := buf.settled(quietRows)
	return periods >= earlyPeriods && 3*rows >= 2*buf.rows
}

// idle is told that a partition has read everything the log holds: the
// end of a burst is written at once.
func (tw *topicWriter) idle() {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.buf.rows == 0 {
		return
	}
	tw.count(0)
	if tw.winRows+tw.before >= burstRows || tw.now().Sub(tw.opened) >= tw.roll.MaxAge.D() {
		tw.requestFlush()
	}
}

// count adds n rows read now to the burst windows.
func (tw *topicWriter) count(n int64) {
	now := tw.now()
	switch age := now.Sub(tw.winStart); {
	case age >= 2*burstWindow:
		tw.winStart, tw.winRows, tw.before = now, 0, 0
	case age >= burstWindow:
		tw.winStart, tw.winRows, tw.before = tw.winStart.Add(burstWindow), 0, tw.winRows
	}
	tw.winRows += n
}

// flushRange is what a flush writes of one partition.
type flushRange struct {
	part              int
	fence             Fence
	first, end        int64
	ingest, eventTime int64
	rows, maxTime     int64
}

// flush writes the buffer to the lake: one file per period, then one
// manifest commit of the files and every partition's new Next, then the
// partitions' positions in the log. A crash before the commit leaves files
// no manifest lists (the partition's next owner removes them); after it,
// the ranges are in the lake exactly once. If the flush fails, the buffer
// is dropped and every reader starts again from the manifest.
func (tw *topicWriter) flush(ctx context.Context) error {
	tw.flushMu.Lock()
	defer tw.flushMu.Unlock()
	tw.mu.Lock()
	for {
		var wait *tidying
		for _, pw := range tw.parts {
			if pw.end > pw.first && pw.tidy.pending() {
				wait = pw.tidy
				break
			}
		}
		if wait == nil {
			break
		}
		tw.mu.Unlock()
		select {
		case <-wait.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		tw.mu.Lock()
	}
	buf := tw.buf
	var ranges []flushRange
	lost := false
	for p, pw := range tw.parts {
		if pw.end > pw.first && (pw.gone || pw.lease != nil && !pw.lease.Valid() || pw.tidy.failed() != nil) {
			// The partition moved to another process: what this one read
			// of it is not committed (the new owner reads it again from
			// the manifest), and the rest of the flush goes ahead. So too
			// when its recovery failed: attach then stops and is run
			// again.
			buf.drop(p)
			pw.first, pw.rows = pw.end, 0
			lost = true
			continue
		}
		if pw.end > pw.first {
			ranges = append(ranges, flushRange{part: p, fence: pw.lease, first: pw.first, end: pw.end, ingest: pw.ingest,
				eventTime: pw.eventTime, rows: pw.rows, maxTime: pw.maxTime})
			pw.first, pw.rows = pw.end, 0
		}
	}
	if len(ranges) == 0 {
		if lost {
			tw.buf = newRowBuffer(tw.tl.topic.Schema)
			tw.budget.give(buf.bytes)
		}
		tw.mu.Unlock()
		return nil
	}
	tw.buf = newRowBuffer(tw.tl.topic.Schema)
	tw.mu.Unlock()
	defer tw.budget.give(buf.bytes)
	slices.SortFunc(ranges, func(a, b flushRange) int { return cmp.Compare(a.part, b.part) })
	err := tw.commitBuffer(ctx, buf, ranges)
	if err != nil {
		tw.leaveOut(lostPartitions(err))
		tw.restart()
		return err
	}
	topic := tw.tl.topic.Name
	tw.metrics.lakeRows.WithLabelValues(topic).Add(float64(buf.rows))
	for _, r := range ranges {
		tw.report(ctx, r.part, r.end, r.eventTime)
	}
	tw.logger.Debug("lake: flushed", "topic", topic, "partitions", len(ranges), "rows", buf.rows, "periods", len(buf.periods))
	return nil
}

// commitBuffer writes buf's files and commits them with ranges.
func (tw *topicWriter) commitBuffer(ctx context.Context, buf *rowBuffer, ranges []flushRange) error {
	topic := tw.tl.topic.Name
	entries, err := tw.writeFiles(ctx, buf, ranges)
	if err != nil {
		return err
	}
	_, err = tw.tl.ms.commit(ctx, func(m *manifest) (*delta, error) {
		d := &delta{Add: entries}
		var lost []error
		for _, r := range ranges {
			if err := fenced(m.partition(r.part), r.fence, topic); err != nil {
				lost = append(lost, err)
			}
		}
		if len(lost) > 0 {
			return nil, errors.Join(lost...)
		}
		for _, r := range ranges {
			ps := m.partition(r.part)
			if ps.Next != r.first {
				return nil, fmt.Errorf("lake: %s/%d: the manifest is at offset %d, the flush starts at %d", topic, r.part, ps.Next, r.first)
			}
			if r.rows > 0 && (ps.Rows == 0 || r.maxTime > ps.MaxTime) {
				ps.MaxTime = r.maxTime
			}
			ps.Next, ps.Ingest, ps.Rows = r.end, r.ingest, ps.Rows+r.rows
			if r.fence != nil {
				ps.Epoch = r.fence.Epoch()
			}
			d.Partitions = append(d.Partitions, ps)
		}
		return d, nil
	})
	if errors.Is(err, errCommitUnknown) {
		paths := make([]string, len(entries))
		for i, e := range entries {
			paths[i] = e.Path
		}
		if tw.tl.ms.landed(paths...) {
			err = nil // its files are live: this commit listed them
		}
	}
	if err != nil {
		if !errors.Is(err, errCommitUnknown) {
			tw.remove(entries)
		}
		return err
	}
	tw.metrics.lakeFiles.WithLabelValues(topic).Add(float64(len(entries)))
	if tw.flushed != nil {
		tw.flushed()
	}
	return nil
}

// remove deletes files a failed flush wrote (best effort: what is left is
// removed by the partition's next owner).
func (tw *topicWriter) remove(entries []fileEntry) {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = tw.tl.key(e.Path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tw.tl.st.Delete(ctx, keys...); err != nil {
		tw.logger.Warn("lake: removing the files of a failed flush", "topic", tw.tl.topic.Name, "err", err)
	}
}

// leaveOut stops the readers of partitions a flush found taken by another
// process: their rows are not flushed again (attach then returns errLost).
func (tw *topicWriter) leaveOut(parts []int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	for _, p := range parts {
		if pw := tw.parts[p]; pw != nil && !pw.gone {
			pw.gone = true
			if pw.stop != nil {
				pw.stop()
			}
		}
	}
}

// restart drops the buffer and sends every reader back to the manifest.
func (tw *topicWriter) restart() {
	m := tw.tl.ms.snapshot()
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.budget.give(tw.buf.bytes)
	tw.buf = newRowBuffer(tw.tl.topic.Schema)
	tw.gen++
	for p, pw := range tw.parts {
		next := m.partition(p).Next
		pw.first, pw.end, pw.rows = next, next, 0
	}
}

// report commits a partition's position to the log under its lease: for
// lag and retention only (the manifest says what the lake holds), so a
// failure is logged and repaired by the next flush or start. A commit the
// log fences (the partition moved) loses the lease, which stops the
// partition's reader.
func (tw *topicWriter) report(ctx context.Context, part int, offset, eventTime int64) {
	tw.mu.Lock()
	pw := tw.parts[part]
	tw.mu.Unlock()
	if pw == nil || pw.lease == nil {
		return
	}
	if err := pw.lease.Commit(ctx, tw.tl.topic.Name, offset, eventTime, ""); err != nil {
		tw.logger.Warn("lake: commit", "topic", tw.tl.topic.Name, "partition", part, "err", err)
		return
	}
	tw.mu.Lock()
	pw.committed = offset
	tw.mu.Unlock()
}
