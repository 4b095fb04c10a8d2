package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// lakeConsumer is the consumer name under which lake writers commit.
const lakeConsumer = "lake"

// maxOpenHours bounds the hour files one partition keeps open: events
// spread over more hours (a backfill, a clock gone wild) close the files
// early rather than hold many row groups in memory.
const maxOpenHours = 16

// lakeLog is what a lake writer needs of the log: read a partition,
// report how far it read (for lag) and register as a consumer. It commits
// its position, once that is durable, through the partition's lease.
type lakeLog interface {
	Reader(ctx context.Context, topic string, partition int, from broker.Position) (*broker.Reader, error)
	Register(ctx context.Context, consumer, topic string) error
	Progress(consumer, topic string, partition int, offset int64)
}

// topicLake is one topic's lake: its directory, schema and manifest. The
// lake writer, compaction and readers of the topic share it.
type topicLake struct {
	topic *pipelines.Topic
	dir   string
	ls    *lakeSchema
	ms    *manifestStore
	// scan reads one lake file (scanParquet); benchmarks swap in another
	// reader to compare them on the same workload.
	scan func(ctx context.Context, path string, schema event.Schema, fe fileEntry, opts scanOptions, fn func(*scanBatch) error) error
	// flush reaches the partition writers, for recomputes that first make
	// the lake durable up to the log's end.
	flush *flushRequests
}

func openTopicLake(lakeDir string, t *pipelines.Topic) (*topicLake, error) {
	ls, err := newLakeSchema(t.Schema)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", t.Name, err)
	}
	dir := filepath.Join(lakeDir, t.Name)
	ms, err := openManifestStore(dir, t.Name)
	if err != nil {
		return nil, err
	}
	return &topicLake{topic: t, dir: dir, ls: ls, ms: ms, scan: scanParquet, flush: newFlushRequests(t.Partitions)}, nil
}

// recover brings the directory in line with the manifest after a crash:
// temporary files are removed, data files the manifest does not list
// (renamed before a crash stopped the manifest commit) are removed, and
// files compaction replaced are hidden. It must run before the topic's
// writer and compaction start, and only in the process that writes the lake.
func (tl *topicLake) recover(log *slog.Logger) error { return tl.clean(log, tl.ms.snapshot(), -1) }

// recoverPartition is recover for the files of one partition: what the
// process that takes a partition over with epoch does, since other
// processes may be writing the others' files. It runs holding the
// manifest's lock and records epoch as the partition's in the manifest
// first: the writer the partition moved away from may be renaming and
// committing a flush at this very moment, so its files are either listed
// when the directory is read here, or its commit is refused afterwards
// (a higher epoch committed) and it removes them itself. Without that, a
// file it committed just after the manifest was read here would be removed
// while the manifest lists it.
func (tl *topicLake) recoverPartition(log *slog.Logger, part int, epoch uint64) error {
	_, err := tl.ms.update(func(m *manifest) error {
		ps := m.partition(part)
		if ps.Epoch > epoch {
			return fmt.Errorf("%w: %s/%d: manifest committed by epoch %d, this process holds %d", errLost, tl.topic.Name, part, ps.Epoch, epoch)
		}
		ps.Epoch = epoch
		m.setPartition(ps)
		return tl.clean(log, m, part)
	})
	return err
}

// clean removes and hides what m does not list of partition part's files
// (every partition's when part is negative).
func (tl *topicLake) clean(log *slog.Logger, m *manifest, part int) error {
	prefix := ""
	if part >= 0 {
		prefix = "p" + strconv.Itoa(part) + "-"
	}
	live := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		live[filepath.FromSlash(f.Path)] = true
	}
	replaced := make(map[string]bool, len(m.Replaced))
	for _, r := range m.Replaced {
		replaced[filepath.FromSlash(r.Path)] = true
	}
	dirs := map[string]bool{}
	err := filepath.WalkDir(tl.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(tl.dir, path)
		name := d.Name()
		if prefix != "" && !strings.HasPrefix(strings.TrimPrefix(name, "."), prefix) {
			return nil
		}
		switch {
		case rel == manifestName:
			return nil
		case strings.HasSuffix(name, ".tmp"):
			log.Info("lake: removing unfinished file", "file", path)
		case strings.HasSuffix(name, ".parquet") && !strings.HasPrefix(name, "."):
			if live[rel] {
				return nil
			}
			if replaced[rel] {
				// Replaced by compaction, but the crash came before it was hidden.
				dirs[filepath.Dir(path)] = true
				return os.Rename(path, replacedName(path))
			}
			log.Info("lake: removing file the manifest does not list (written before a crash)", "file", path)
		case strings.HasSuffix(name, ".replaced"):
			orig := filepath.Join(filepath.Dir(rel), strings.TrimSuffix(strings.TrimPrefix(name, "."), ".replaced"))
			if replaced[orig] {
				return nil
			}
		default:
			return nil
		}
		dirs[filepath.Dir(path)] = true
		return os.Remove(path)
	})
	if err != nil {
		return fmt.Errorf("lake: recovering %s: %w", tl.dir, err)
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("lake: recovering %s: %w", tl.dir, err)
		}
	}
	return nil
}

// lakeWriter copies one topic from the log into its lake.
type lakeWriter struct {
	tl      *topicLake
	log     lakeLog
	logger  *slog.Logger
	now     func() time.Time
	roll    pipelines.LakeRoll
	poll    time.Duration
	metrics *metrics
}

// runOwned writes partition part while lease holds it, restarting from the
// manifest after a pause when the writer fails, until ctx is done or the
// partition moves to another process.
func (w *lakeWriter) runOwned(ctx context.Context, part int, lease *broker.Lease) {
	// While it runs here, a recompute in this process may ask it to flush.
	w.tl.flush.owned[part].Store(true)
	defer w.tl.flush.owned[part].Store(false)
	// The poll interval doubling to 30 s, without jitter: each partition
	// writer waits for its own log and lake.
	backoff := retry.Backoff{Base: w.poll, Cap: 30 * time.Second}
	backoff.Do(ctx, func(int) error {
		err := w.runPartition(ctx, part, lease)
		switch {
		case ctx.Err() != nil:
			return nil // stopping
		case errors.Is(err, errLost):
			return retry.Permanent(err)
		case err == nil:
			err = errors.New("stopped without an error")
		}
		return err
	}, func(_ int, err error, _ time.Duration) {
		w.logger.Error("lake: partition writer failed; restarting from the manifest",
			"topic", w.tl.topic.Name, "partition", part, "err", err)
	})
}

// errLost stops a writer whose partition another process has taken.
var errLost = errors.New("lake: the partition moved to another process")

// openFlush is the part of a partition read but not yet in the lake: the
// events of offsets [first, end), spread over hour files.
type openFlush struct {
	first, end int64
	files      map[int64]*hourFile
	rows       int
	opened     time.Time
	ingest     int64 // ingest time of the last entry
	eventTime  int64 // event time of the last event
	committed  int64 // the offset last committed to the log
	lease      *broker.Lease
}

type hourFile struct {
	fw               *fileWriter
	minTime, maxTime int64
	rows             int64
}

func (w *lakeWriter) runPartition(ctx context.Context, part int, lease *broker.Lease) error {
	topic := w.tl.topic.Name
	next := w.tl.ms.snapshot().partition(part).Next
	// The manifest, not the committed offset, says what the lake holds;
	// the commit can lag it by one flush after a crash.
	if committed, _, ok := lease.Committed(topic); !ok || committed != next {
		if ok && committed > next {
			w.logger.Warn("lake: committed offset is past the lake's manifest; rewriting from the manifest",
				"topic", topic, "partition", part, "committed", committed, "manifest_next", next)
		}
		if err := w.commit(ctx, lease, part, next, 0); errors.Is(err, errLost) {
			return err
		} else if err != nil {
			w.logger.Warn("lake: commit", "topic", topic, "partition", part, "err", err)
		}
	}
	r, err := w.log.Reader(ctx, topic, part, broker.FromOffset(next))
	if err != nil {
		return err
	}
	defer r.Close()
	// What is read goes into open files, durable only when they roll: the
	// read position shows a writer that keeps up, the commit what is safe.
	w.log.Progress(lakeConsumer, topic, part, next)
	fl := &openFlush{first: next, end: next, committed: next, files: map[int64]*hourFile{}, lease: lease}
	var pending pendingFlushes
	defer func() {
		for _, hf := range fl.files {
			hf.fw.abort()
		}
		pending.answer(0, fmt.Errorf("the lake writer of %s/%d stopped", topic, part))
	}()
	for {
		// A recompute asked for the log up to some offset: once read, it
		// is flushed at once rather than at the roll.
		pending.take(w.tl.flush.parts[part])
		if pending.due(fl.end) {
			if err := w.flush(ctx, part, fl); err != nil {
				pending.answer(0, err)
				return err
			}
		}
		pending.answer(fl.first, nil)
		ectx, cancel := context.WithTimeout(ctx, w.poll)
		e, err := r.Next(ectx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// Soft stop: what was read goes into the lake before returning,
			// and the position is committed even if the last flush's
			// commit was cut short by the cancellation.
			sctx := context.WithoutCancel(ctx)
			if err := w.flush(sctx, part, fl); err != nil {
				return err
			}
			if fl.committed != fl.first {
				if err := w.commit(sctx, lease, part, fl.first, fl.eventTime); err != nil {
					return err
				}
			}
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			if fl.rows > 0 && w.now().Sub(fl.opened) >= w.roll.MaxAge.D() {
				if err := w.flush(ctx, part, fl); err != nil {
					return err
				}
			}
			continue
		case errors.Is(err, broker.ErrCorruptEntry), errors.Is(err, broker.ErrSchemaMismatch):
			// The entry's events cannot be decoded, so they can never reach
			// the lake; stopping here would stop the lake for good.
			w.logger.Error("lake: skipping an entry that cannot be decoded", "topic", topic, "partition", part, "err", err)
			w.metrics.skipped.WithLabelValues(topic).Inc()
			continue
		default:
			return err
		}
		if err := w.add(part, fl, &e); err != nil {
			return err
		}
		w.log.Progress(lakeConsumer, topic, part, fl.end)
		if fl.rows >= w.roll.MaxRows || len(fl.files) > maxOpenHours ||
			(fl.rows > 0 && w.now().Sub(fl.opened) >= w.roll.MaxAge.D()) {
			if err := w.flush(ctx, part, fl); err != nil {
				return err
			}
		}
	}
}

// commit records the writer's position under its lease; errLost when
// another process took the partition.
func (w *lakeWriter) commit(ctx context.Context, lease *broker.Lease, part int, offset, eventTime int64) error {
	err := lease.Commit(ctx, w.tl.topic.Name, offset, eventTime, "")
	if errors.Is(err, broker.ErrFenced) {
		return fmt.Errorf("%w: %w", errLost, err)
	}
	return err
}

// add puts an entry's events not yet in the lake into the open flush.
func (w *lakeWriter) add(part int, fl *openFlush, e *broker.Entry) error {
	for i := range e.Events {
		off := e.Offset + int64(i)
		if off < fl.end {
			continue // already in the lake or in this flush
		}
		ev := &e.Events[i]
		h := hourOf(ev.Time)
		hf := fl.files[h]
		if hf == nil {
			// The final name needs the flush's last offset, unknown yet;
			// the file is created under a provisional name and renamed on commit.
			// The name holds the lease's epoch: a writer the partition moved
			// away from (cut off, not yet stopped) must never write into the
			// new owner's file.
			fw, err := createFile(w.tl.ls, filepath.Join(w.tl.dir, hourPath(h), fmt.Sprintf("p%d-%d-open-e%d.parquet", part, fl.first, fl.lease.Epoch())))
			if err != nil {
				return err
			}
			hf = &hourFile{fw: fw, minTime: ev.Time, maxTime: ev.Time}
			fl.files[h] = hf
		}
		if err := hf.fw.add(ev, int32(part), off); err != nil {
			return err
		}
		hf.rows++
		hf.minTime = min(hf.minTime, ev.Time)
		hf.maxTime = max(hf.maxTime, ev.Time)
		if fl.rows == 0 {
			fl.opened = w.now()
		}
		fl.rows++
		fl.end = off + 1
		fl.eventTime = ev.Time
	}
	if e.End() > fl.end {
		// Offsets skipped by the log (retention) are covered by this flush.
		fl.end = e.End()
	}
	fl.ingest = e.Ingest
	return nil
}

// flush makes the open flush part of the lake: every hour file is closed
// and fsynced, renamed to its final name, the directories fsynced, then the
// manifest commits the whole offset range at once, and only then the
// consumer's position moves. A crash before the manifest commit leaves
// files that recovery removes; after it, the range is in the lake once.
func (w *lakeWriter) flush(ctx context.Context, part int, fl *openFlush) error {
	if fl.end == fl.first {
		return nil
	}
	topic := w.tl.topic.Name
	last := fl.end - 1
	var entries []fileEntry
	var renamed []string
	dirs := map[string]bool{}
	type move struct{ tmp, final string }
	var moves []move
	fail := func(err error) error {
		for _, p := range renamed {
			os.Remove(p)
		}
		for _, mv := range moves {
			os.Remove(mv.tmp) // gone already when renamed
		}
		return err
	}
	for h, hf := range fl.files {
		if err := hf.fw.finish(); err != nil {
			return fail(err)
		}
		rel := hourPath(h) + "/" + fileName(part, fl.first, last)
		st, err := os.Stat(hf.fw.tmp)
		if err != nil {
			return fail(fmt.Errorf("lake: %w", err))
		}
		moves = append(moves, move{hf.fw.tmp, filepath.Join(w.tl.dir, filepath.FromSlash(rel))})
		entries = append(entries, fileEntry{
			Path: rel, Hour: h, Partition: part, First: fl.first, Last: last,
			Rows: hf.rows, Bytes: st.Size(), CRC32C: hf.fw.sum.Sum32(), MinTime: hf.minTime, MaxTime: hf.maxTime,
		})
	}
	clear(fl.files)
	epoch := fl.lease.Epoch()
	_, err := w.tl.ms.update(func(m *manifest) error {
		ps := m.partition(part)
		// Fencing: a writer the partition has moved away from (a higher
		// epoch committed) may not commit; nor one that lost the lease.
		if ps.Epoch > epoch || !fl.lease.Valid() {
			return fmt.Errorf("%w: %s/%d: manifest committed by epoch %d, this writer holds %d", errLost, topic, part, ps.Epoch, epoch)
		}
		if ps.Next != fl.first {
			return fmt.Errorf("lake: %s/%d: manifest is at offset %d, flush starts at %d", topic, part, ps.Next, fl.first)
		}
		// The files take their final names only here, under the
		// manifest's lock and after the fencing check, so that a stale
		// writer never renames over a file another writer committed.
		for _, mv := range moves {
			if err := os.Rename(mv.tmp, mv.final); err != nil {
				return fmt.Errorf("lake: %w", err)
			}
			renamed = append(renamed, mv.final)
			dirs[filepath.Dir(mv.final)] = true
		}
		// New hour directories need their parents' entries durable as well.
		for d := range dirs {
			for _, x := range []string{d, filepath.Dir(d), w.tl.dir} {
				if err := syncDir(x); err != nil {
					return fmt.Errorf("lake: %w", err)
				}
			}
		}
		for i := range entries {
			entries[i].Added = m.Version
		}
		m.Files = append(m.Files, entries...)
		m.setPartition(partitionState{Partition: part, Next: fl.end, Ingest: fl.ingest, Epoch: epoch})
		return nil
	})
	if err != nil {
		return fail(err)
	}
	w.metrics.lakeRows.WithLabelValues(topic).Add(float64(fl.rows))
	w.metrics.lakeFiles.WithLabelValues(topic).Add(float64(len(entries)))
	// The commit only reports progress (lag, retention); a failed one is
	// repaired by the next flush or the next start.
	if err := w.commit(ctx, fl.lease, part, fl.end, fl.eventTime); err != nil {
		if errors.Is(err, errLost) {
			return err
		}
		w.logger.Warn("lake: commit", "topic", topic, "partition", part, "err", err)
	} else {
		fl.committed = fl.end
	}
	w.logger.Debug("lake: flushed", "topic", topic, "partition", part, "first", fl.first, "last", last,
		"rows", fl.rows, "files", len(entries))
	fl.first, fl.rows = fl.end, 0
	return nil
}
