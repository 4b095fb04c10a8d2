package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// recoverOwned brings a topic's storage in line with its manifest for
// the partitions this process has just taken (after a crash, or from
// another process): writes never finished are discarded, data files no
// manifest lists are removed, and files compaction replaced but that are
// still visible are hidden. It touches only what belongs to those
// partitions (files named p<partition>-… or w<partition>-…, and the
// compaction files of the periods they compact), since other processes may
// be writing the others; and it must run after the take-over is committed
// (Fence), so that a previous owner can no longer commit what it wrote.
//
// fences are the partitions and the leases this process holds them under
// (nil: the only writer). Recovery may itself be the stale party: paused
// between reading the manifest and deleting, while the partitions moved on
// to a later owner that wrote and committed files since. So it leaves
// alone what may be a later writer's (later): a partition whose manifest
// already records a higher epoch (it is refused with errLost), a flush's
// file whose name carries a higher epoch, a merge's output named after a
// version past the manifest it read.
//
// writing are the partitions whose reader already fills this process's
// buffer while they are recovered (a take-over: see topicWriter.attach).
// Their writer flushes nothing of them before the recovery ends, and a
// file named with the very epoch it holds them under is its own, never a
// predecessor's (an epoch is one take of the partition); so such files are
// left alone too, whatever happens to run before the recovery.
//
// It returns the partitions found taken by a later owner (lost: errLost,
// by partition) apart from what failed the recovery of them all (err).
// The lake writer asks for its partitions one by one (recoverPartition).
func (tl *topicLake) recoverOwned(ctx context.Context, log *slog.Logger, fences map[int]Fence, writing map[int]bool) (lost map[int]error, err error) {
	tl.work.Lock()
	defer tl.work.Unlock()
	m := tl.ms.snapshot()
	owned := make(map[int]bool, len(fences))
	for p, f := range fences {
		if err := fenced(m.partition(p), f, tl.topic.Name); err != nil {
			if lost == nil {
				lost = map[int]error{}
			}
			lost[p] = err
			continue
		}
		owned[p] = true
	}
	if len(owned) == 0 {
		return lost, nil
	}
	mine := func(path string) bool { return tl.owns(path, owned) && !tl.later(path, m, fences, writing) }
	replaced := make(map[string]bool, len(m.Replaced))
	for _, r := range m.Replaced {
		replaced[r.Path] = true
	}
	prefix := tl.topic.Name + "/"
	pending, err := tl.st.Unfinished(ctx, prefix)
	if err != nil {
		return lost, fmt.Errorf("lake: recovering %s: %w", tl.topic.Name, err)
	}
	for _, p := range pending {
		rel := strings.TrimPrefix(p.Key, prefix)
		if v, ok := logWrite(rel); ok && v > m.Version {
			// Still possible: gone once the log holds its version.
			tl.ms.discardAt(p, v)
			continue
		}
		if _, ok := logWrite(rel); ok || mine(rel) {
			log.Info("lake: discarding an unfinished write", "file", tl.st.String()+p.Key)
			if err := tl.st.Discard(ctx, p); err != nil {
				return lost, fmt.Errorf("lake: recovering %s: %w", tl.topic.Name, err)
			}
		}
	}
	es, err := tl.st.List(ctx, prefix, "")
	if err != nil {
		return lost, fmt.Errorf("lake: recovering %s: %w", tl.topic.Name, err)
	}
	log.Debug("lake: recovering", "topic", tl.topic.Name, "version", m.Version, "objects", len(es), "replaced", len(replaced), "unfinished", len(pending))
	var orphans []string
	for _, e := range es {
		rel := strings.TrimPrefix(e.Key, prefix)
		dir, name := "", rel
		if i := strings.LastIndexByte(rel, '/'); i >= 0 {
			dir, name = rel[:i+1], rel[i+1:]
		}
		switch {
		case !inPeriodDir(rel):
		case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".replaced"):
			// A replaced file whose grace is over but whose deletion was
			// cut short: nothing refers to it any more.
			orig := dir + strings.TrimSuffix(strings.TrimPrefix(name, "."), ".replaced")
			if !replaced[orig] && !m.isLive(orig) && mine(orig) {
				orphans = append(orphans, e.Key)
			}
		case !strings.HasSuffix(name, ".parquet") || m.isLive(rel) || !mine(rel):
		case replaced[rel]:
			// Replaced by compaction, but the crash came before it was hidden.
			log.Info("lake: hiding a file compaction replaced (written before a crash)", "file", tl.st.String()+e.Key)
			if err := tl.st.Rename(ctx, e.Key, replacedName(e.Key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return lost, fmt.Errorf("lake: recovering %s: %w", tl.topic.Name, err)
			}
		default:
			log.Info("lake: removing a file no manifest lists (written before a crash)", "file", tl.st.String()+e.Key)
			orphans = append(orphans, e.Key)
		}
	}
	if err := tl.st.Delete(ctx, orphans...); err != nil {
		return lost, fmt.Errorf("lake: recovering %s: %w", tl.topic.Name, err)
	}
	return lost, nil
}

// later tells whether the data file at path (relative to the topic) may
// have been written after recovery read manifest m, by a process that
// took its partition over since: a flush's file whose name carries an
// epoch past the one fences hold for its first partition (or that epoch,
// for a partition among writing: this process's own), or a merge's
// output named after a version past m (merges are named after the
// version they read, and this process does not merge while it recovers).
func (tl *topicLake) later(path string, m *manifest, fences map[int]Fence, writing map[int]bool) bool {
	name := strings.TrimSuffix(path[strings.LastIndexByte(path, '/')+1:], ".parquet")
	switch {
	case name == "":
		return false
	case name[0] == 'p' || name[0] == 'w':
		part, epoch, ok := flushName(name)
		f := fences[part]
		return ok && f != nil && (epoch > f.Epoch() || writing[part] && epoch == f.Epoch() && epoch > 0)
	case name[0] == 'c':
		v, err := strconv.ParseInt(name[1:], 10, 64)
		return err == nil && v > m.Version
	}
	return false
}

// flushName reads the partition and epoch from a flush file's name
// without its extension: p<partition>-<first>-<last>[-e<epoch>] (or w…);
// the epoch is 0 when the name has none.
func flushName(name string) (part int, epoch uint64, ok bool) {
	fields := strings.Split(name[1:], "-")
	if len(fields) != 3 && len(fields) != 4 {
		return 0, 0, false
	}
	part, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0, 0, false
	}
	if len(fields) == 4 {
		e, ok := strings.CutPrefix(fields[3], "e")
		if epoch, err = strconv.ParseUint(e, 10, 64); !ok || err != nil {
			return 0, 0, false
		}
	}
	return part, epoch, true
}

// owns tells whether the data file at path (relative to the topic) is one
// the owner of the partitions owned answers for: a writer's file whose
// name starts with one of them, or a compaction file of a period one of
// them compacts.
func (tl *topicLake) owns(path string, owned map[int]bool) bool {
	name := path[strings.LastIndexByte(path, '/')+1:]
	switch {
	case name == "":
		return false
	case name[0] == 'p' || name[0] == 'w':
		i := strings.IndexByte(name, '-')
		p, err := strconv.Atoi(name[1:max(i, 1)])
		return i > 1 && err == nil && owned[p]
	case name[0] == 'c':
		start, ok := periodOfPath(path)
		return ok && owned[tl.shard(start)]
	}
	return false
}

// logWrite tells whether an unfinished write (at path, relative to the
// topic) is one of the manifest log, and of which version: a record or
// checkpoint of a version the log already holds can no longer succeed (its
// writer crashed, or lost the race for that version), nor matter; a
// checkpoint hint (version 0: always dead) is rewritten with every
// checkpoint, and a writer that loses its unfinished one only logs it.
func logWrite(path string) (int64, bool) {
	rest, ok := strings.CutPrefix(path, manifestDir+"/")
	if !ok {
		return 0, false
	}
	if rest == lastCheckpoint {
		return 0, true
	}
	v, _, ok := parseLogKey(rest)
	return v, ok
}

// recoveries coalesces the recoveries of a topic's partitions: a process
// takes its partitions, and gives them back when it stops, all at once,
// and each recovery lists the topic's whole lake (~7,000 objects for a
// year of an hourly lake: a quarter of a second), so one recovery a
// partition was eight listings where one does. A partition asked for
// while a recovery runs waits for the next, which takes every partition
// asked for meanwhile.
type recoveries struct {
	mu      sync.Mutex
	running bool
	asks    []*recoveryAsk
}

// recoveryAsk is one partition's recovery, asked for under ctx.
type recoveryAsk struct {
	ctx     context.Context
	part    int
	fence   Fence
	writing bool       // the partition's reader runs meanwhile (recoverOwned)
	done    chan error // the outcome; buffered
}

// recoverPartition is recoverOwned for partition part alone, held
// under fence (writing: while its reader runs), done together with the
// other partitions of the topic asked for meanwhile. It returns the
// partition's outcome: errLost when a later owner holds it, or what failed
// the recovery.
func (tl *topicLake) recoverPartition(ctx context.Context, log *slog.Logger, part int, fence Fence, writing bool) error {
	a := &recoveryAsk{ctx: ctx, part: part, fence: fence, writing: writing, done: make(chan error, 1)}
	q := &tl.recoveries
	q.mu.Lock()
	q.asks = append(q.asks, a)
	if q.running {
		q.mu.Unlock()
		select {
		case err := <-a.done:
			return err
		case <-ctx.Done():
			// The recovery that takes it sees the context done.
			return ctx.Err()
		}
	}
	// This caller recovers what is asked for until nothing is: its own
	// partition first, with whatever was asked for meanwhile.
	q.running = true
	for len(q.asks) > 0 {
		round, next := recoveryRound(q.asks)
		q.asks = next
		q.mu.Unlock()
		tl.recoverRound(log, round)
		q.mu.Lock()
	}
	q.running = false
	q.mu.Unlock()
	return <-a.done
}

// recoveryRound splits asks into one recovery's (the first ask of each
// partition) and the rest (a partition asked for again, under another
// fence, is recovered after).
func recoveryRound(asks []*recoveryAsk) (round, next []*recoveryAsk) {
	seen := make(map[int]bool, len(asks))
	for _, a := range asks {
		if seen[a.part] {
			next = append(next, a)
			continue
		}
		seen[a.part] = true
		round = append(round, a)
	}
	return round, next
}

// recoverRound recovers the partitions of asks in one recovery, under a
// context that ends when every ask's has, and tells each ask its outcome.
func (tl *topicLake) recoverRound(log *slog.Logger, asks []*recoveryAsk) {
	fences := make(map[int]Fence, len(asks))
	writing := map[int]bool{}
	live := asks[:0:0]
	for _, a := range asks {
		if err := a.ctx.Err(); err != nil {
			a.done <- err
			continue
		}
		fences[a.part] = a.fence
		if a.writing {
			writing[a.part] = true
		}
		live = append(live, a)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	left := len(live)
	for _, a := range live {
		stop := context.AfterFunc(a.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
		defer stop()
	}
	lost, err := tl.recoverOwned(ctx, log, fences, writing)
	for _, a := range live {
		a.done <- errors.Join(err, lost[a.part])
	}
}
