package batch

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// writeFiles writes one file per period of buf, up to flushCommits at a
// time (flushEncoders of them encoding), makes them durable together (one
// group: a directory's entries are synced once for all its files), and
// returns their manifest entries in period order.
func (tw *topicWriter) writeFiles(ctx context.Context, buf *rowBuffer, ranges []flushRange) ([]fileEntry, error) {
	periods := buf.sortedPeriods()
	entries := make([]fileEntry, len(periods))
	errs := make([]error, len(periods))
	byPart := make(map[int]flushRange, len(ranges))
	for _, r := range ranges {
		byPart[r.part] = r
	}
	g := lakestore.NewGroup(tw.tl.st)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range min(flushCommits, len(periods)) {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= len(periods) || ctx.Err() != nil {
					return
				}
				entries[k], errs[k] = tw.writePeriod(ctx, g, periods[k], buf.periods[periods[k]], byPart)
				if errs[k] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	var written []fileEntry
	var err error
	for k := range periods {
		if errs[k] == nil && entries[k].Path != "" {
			written = append(written, entries[k])
		}
		err = cmp.Or(err, errs[k])
	}
	if err == nil && len(written) != len(periods) {
		err = cmp.Or(ctx.Err(), errors.New("lake: flush stopped"))
	}
	if err == nil {
		err = g.Sync(ctx)
	}
	if err != nil {
		tw.remove(written)
		return nil, err
	}
	return entries, nil
}

// writePeriod writes one period's runs as one file, rows in event-time
// order, and returns its manifest entry. The file is named after its first
// partition's range: p<partition>-<first>-<last>.parquet when it holds one
// partition, w<partition>-<first>-<last>.parquet when it holds more; with
// -e<epoch> before .parquet when that partition is written under a lease
// (epochSuffix).
func (tw *topicWriter) writePeriod(ctx context.Context, g lakestore.Group, period int64, runs map[int]*rowRun, byPart map[int]flushRange) (fileEntry, error) {
	parts := make([]int, 0, len(runs))
	for p := range runs {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	fe := fileEntry{Start: period, End: tw.tl.layout.end(period)}
	for i, p := range parts {
		r, run := byPart[p], runs[p]
		fe.Ranges = append(fe.Ranges, offsetRange{Partition: p, First: r.first, Last: r.end - 1, Rows: int64(run.rows)})
		fe.Rows += int64(run.rows)
		if i == 0 || run.minTime < fe.MinTime {
			fe.MinTime = run.minTime
		}
		if i == 0 || run.maxTime > fe.MaxTime {
			fe.MaxTime = run.maxTime
		}
	}
	kind := "p"
	if len(parts) > 1 {
		kind = "w"
	}
	first := fe.Ranges[0]
	fe.Path = tw.tl.layout.path(period) + "/" + kind + strconv.Itoa(first.Partition) + "-" +
		strconv.FormatInt(first.First, 10) + "-" + strconv.FormatInt(first.Last, 10) + epochSuffix(byPart[first.Partition].fence) + ".parquet"
	for attempt := 0; ; attempt++ {
		err := tw.writeFile(ctx, g, &fe, runs)
		if errors.Is(err, lakestore.ErrExists) && attempt == 0 {
			// A file holds the name: left by a writer of these partitions
			// that failed or lost them (this one owns them now), or by our
			// own request that succeeded unanswered. Replace it, unless
			// this writer is the stale one.
			fences := map[int]Fence{}
			for _, p := range parts {
				fences[p] = byPart[p].fence
			}
			if ferr := tw.tl.mayReplace(fe.Path, fences); ferr != nil {
				return fileEntry{}, ferr
			}
			if derr := tw.tl.st.Delete(ctx, tw.tl.key(fe.Path)); derr != nil {
				return fileEntry{}, derr
			}
			continue
		}
		return fe, err
	}
}

// epochSuffix is what a file written under fence f carries in its name
// after its range: "-e<epoch>", or nothing for a process that is the only
// writer. Two owners of a partition (the new one, and the previous one cut
// off but not stopped yet) read the same offsets from the same next and
// would otherwise name their files alike; with the epoch in the name, the
// files a writer removes (after a refused commit, a failed write, or when
// the name is in its way) are only ever its own.
func epochSuffix(f Fence) string {
	if f == nil || f.Epoch() == 0 {
		return ""
	}
	return "-e" + strconv.FormatUint(f.Epoch(), 10)
}

// writeFile encodes a period's rows as the file of fe with one of the
// encoders, then commits it (create-only, durable at g's Sync) after
// giving the encoder back.
func (tw *topicWriter) writeFile(ctx context.Context, g lakestore.Group, fe *fileEntry, runs map[int]*rowRun) error {
	var fw *fileWriter
	select {
	case fw = <-tw.encoders:
	case <-ctx.Done():
		return ctx.Err()
	}
	w, sum, err := tw.encodeFile(ctx, g, fw, fe, runs)
	if err != nil || fw.out.n <= smallFile {
		tw.encoders <- fw
		fw = nil
	}
	if err != nil {
		return err
	}
	n, err := tw.tl.commitFile(ctx, w, fe.Path, tw.logger)
	if fw != nil {
		tw.encoders <- fw
	}
	if err != nil {
		return err
	}
	fe.Bytes, fe.CRC32C = n, sum
	return nil
}

// commitFile commits a new data file (path relative to the topic)
// create-only. When the commit fails for another reason than the name being
// taken, the object may still have been stored (a stop or a timeout cut the
// answer short, not the write): it is removed then, so that a reader of the
// directory never sees a file no manifest lists once the process has
// stopped. What this removal misses, the next owner's recovery removes.
func (tl *topicLake) commitFile(ctx context.Context, w lakestore.Writer, path string, log *slog.Logger) (int64, error) {
	n, err := w.Commit(ctx, true)
	if err == nil || errors.Is(err, lakestore.ErrExists) {
		return n, err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if derr := tl.st.Delete(dctx, tl.key(path)); derr != nil {
		log.Warn("lake: removing a file whose write failed", "file", tl.key(path), "err", derr)
	}
	return n, err
}

// encodeFile writes the file of fe, its rows in event-time order, and
// returns it uncommitted with its CRC-32C.
func (tw *topicWriter) encodeFile(ctx context.Context, g lakestore.Group, fw *fileWriter, fe *fileEntry, runs map[int]*rowRun) (lakestore.Writer, uint32, error) {
	pr := &fw.sorter
	pr.schema = tw.tl.topic.Schema
	defer pr.release()
	if err := pr.reset(runs); err != nil {
		return nil, 0, err
	}
	fw.surveySorted(pr)
	w, err := g.Create(ctx, tw.tl.key(fe.Path))
	if err != nil {
		fw.abandon()
		return nil, 0, err
	}
	if err := fw.start(w, fe.Ranges); err != nil {
		w.Abort()
		return nil, 0, err
	}
	if err := fw.addSorted(pr); err != nil {
		fw.abandon()
		w.Abort()
		return nil, 0, err
	}
	sum, err := fw.finish()
	if err != nil {
		w.Abort()
		return nil, 0, err
	}
	return w, sum, nil
}

// surveySorted shows the sorted rows of pr to the survey of fw's next file
// (a first pass over them chooses the file's encodings), then rewinds pr.
func (fw *fileWriter) surveySorted(pr *periodReader) {
	for {
		evs, _, _ := pr.next(chunkRows)
		if len(evs) == 0 {
			break
		}
		fw.observe(evs)
	}
	pr.rewind()
}

// addSorted adds the sorted rows of pr to the file fw started, a chunk at a
// time: the decoded events are reused by the next chunk, so each chunk is
// drained before the next is decoded.
func (fw *fileWriter) addSorted(pr *periodReader) error {
	for {
		evs, parts, offs := pr.next(chunkRows)
		if len(evs) == 0 {
			return nil
		}
		for i := range evs {
			if err := fw.add(&evs[i], parts[i], offs[i]); err != nil {
				return err
			}
		}
		if err := fw.drain(); err != nil {
			return err
		}
	}
}
