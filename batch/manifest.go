package batch

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// manifestFormat is the version of the manifest's JSON layout (its
// checkpoints and commit records); docs/lake-format.md specifies it.
// Format 1 was a single _manifest.json rewritten whole on every commit; a
// lake in that format is taken over on open (migrateManifest).
const manifestFormat = 2

// Manifest is one committed state of a topic's lake. A reader that lists
// files from one Manifest sees every event of the offset ranges it covers
// exactly once, whatever the writers and compaction do meanwhile. Manifests
// handed out are never modified.
type manifest struct {
	Format  int    `json:"format"`
	Topic   string `json:"topic"`
	Version int64  `json:"version"`
	// Partitions records, per partition, what the lake holds of it.
	Partitions []partitionState `json:"partitions"`
	// The live data files, ordered by period start, then path ("files" in
	// a checkpoint), and the paths of live and replaced files.
	manifestFiles
	// Replaced are files that compaction merged into others; they are out
	// of the dataset but kept (hidden) for readers of older manifests until
	// their grace period ends.
	Replaced []replacedEntry `json:"replaced,omitempty"`
}

// PartitionState is what the lake holds of one partition.
type partitionState struct {
	Partition int `json:"partition"`
	// Next is the first offset not in the lake: every event of the
	// partition with an offset below Next is in exactly one live file.
	Next int64 `json:"next"`
	// Ingest is the ingest time (UTC µs) of the last entry below Next.
	Ingest int64 `json:"ingest"`
	// Rows counts the partition's events in the lake, and MaxTime is the
	// newest event time among them (UTC µs; meaningless while Rows is 0).
	Rows    int64 `json:"rows,omitempty"`
	MaxTime int64 `json:"max_time,omitempty"`
	// Epoch is the ownership epoch of the writer that last moved Next
	// (or took the partition over): a writer of a lower epoch, one the
	// partition has since moved away from, may no longer commit it.
	Epoch uint64 `json:"epoch,omitempty"`
}

// FileEntry describes one live data file.
type fileEntry struct {
	// Path is relative to the topic directory, with forward slashes:
	// dt=YYYY-MM-DD/hour=HH/<name>.parquet, or dt=YYYY-MM-DD/<name>.parquet
	// for a topic partitioned by day.
	Path string `json:"path"`
	// Start and End bound the file's period, [Start, End) in UTC µs: the
	// event-time hour (or day) every row's event time falls in.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Ranges are the offset ranges the file answers for, ordered by
	// partition and offset and never overlapping: it holds every event of
	// each range's partition with an offset in [First, Last] whose event time
	// falls in the period, and no other. A file the writer made has one
	// range per partition; one compaction made has the ranges of the files
	// it merged (adjoining ones joined).
	Ranges []offsetRange `json:"ranges"`
	Rows   int64         `json:"rows"`
	Bytes  int64         `json:"bytes"`
	// CRC32C is the CRC-32C (Castagnoli) of the whole file; readers check
	// it before trusting the file.
	CRC32C uint32 `json:"crc32c"`
	// MinTime and MaxTime bound the rows' event times (UTC µs).
	MinTime int64 `json:"min_time"`
	MaxTime int64 `json:"max_time"`
	// Added is the manifest version that brought the file's newest rows
	// into the lake: the version that added it, or for a compacted file
	// the largest Added of the files it replaced. A recomputation that
	// last read version V recomputes the periods of files with Added > V.
	Added int64 `json:"added"`
	// Compacted marks a file made by compaction.
	Compacted bool `json:"compacted,omitempty"`
}

// Range is the part of one partition's offsets a file answers for.
type offsetRange struct {
	Partition int   `json:"partition"`
	First     int64 `json:"first"`
	Last      int64 `json:"last"`
	// Rows is how many of the file's rows are of this partition.
	Rows int64 `json:"rows"`
}

// holds reports whether the file answers for the event of partition p at
// offset off.
func (f *fileEntry) holds(p int32, off int64) bool {
	for _, r := range f.Ranges {
		if r.Partition == int(p) && off >= r.First && off <= r.Last {
			return true
		}
	}
	return false
}

// joinRanges orders ranges and joins those that adjoin (one's Last + 1 is
// the next one's First, as the flushes of one partition follow each other).
func joinRanges(rs []offsetRange) []offsetRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b offsetRange) int {
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.First, b.First)
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Partition == r.Partition && out[n-1].Last+1 == r.First {
			out[n-1].Last, out[n-1].Rows = r.Last, out[n-1].Rows+r.Rows
			continue
		}
		out = append(out, r)
	}
	return out
}

// ReplacedEntry is a file compaction took out of the dataset.
type replacedEntry struct {
	Path string `json:"path"`
	// Version is the manifest version that replaced it.
	Version int64 `json:"version"`
	// At is when (Unix seconds) it was replaced.
	At int64 `json:"at"`
}

// Delta is one commit: the change from the previous manifest version to
// this one. It is also the commit record written to the manifest log.
type delta struct {
	Format  int    `json:"format"`
	Topic   string `json:"topic"`
	Version int64  `json:"version"`
	// Commit is a random id of the committing attempt: a writer whose
	// create-only write was answered "exists" (a retried request that had
	// succeeded) recognises its own commit by it.
	Commit string `json:"commit"`
	// Time is when the commit was made (UTC µs, the writer's clock).
	Time int64 `json:"time"`
	// Add are new live files; their Added is set to Version (compacted
	// files keep theirs).
	Add []fileEntry `json:"add,omitempty"`
	// Remove are live files leaving the dataset (compaction): they move to
	// Replaced.
	Remove []string `json:"remove,omitempty"`
	// Partitions are new partition states (replacing the old ones).
	Partitions []partitionState `json:"partitions,omitempty"`
	// Purge are replaced files deleted from storage.
	Purge []string `json:"purge,omitempty"`
}

func (d *delta) empty() bool {
	return len(d.Add) == 0 && len(d.Remove) == 0 && len(d.Partitions) == 0 && len(d.Purge) == 0
}

// partition returns the state of partition p (zero if the lake holds none).
func (m *manifest) partition(p int) partitionState {
	i, ok := slices.BinarySearchFunc(m.Partitions, p, func(ps partitionState, p int) int { return cmp.Compare(ps.Partition, p) })
	if ok {
		return m.Partitions[i]
	}
	return partitionState{Partition: p}
}

// Periods lists the distinct period starts (UTC µs) holding live files,
// ascending.
func (m *manifest) Periods() []int64 {
	var ps []int64
	for f := range m.all() {
		if n := len(ps); n == 0 || ps[n-1] != f.Start {
			ps = append(ps, f.Start)
		}
	}
	return ps
}

// FilesIn returns the live files whose period overlaps [from, to) (UTC µs),
// in period order.
func (m *manifest) FilesIn(from, to int64) []fileEntry {
	var out []fileEntry
	// No period is longer than a month (checkFiles): a file starting
	// before that cannot reach from.
	lo := from - longestPeriod
	if lo > from {
		lo = math.MinInt64 // from - longestPeriod overflowed
	}
	for f := range m.from(lo) {
		if f.Start >= to {
			break
		}
		if f.End > from {
			out = append(out, *f)
		}
	}
	return out
}

// longestPeriod bounds the periods of every layout (a calendar month).
const longestPeriod = 31 * dayMicros

// ErrCorruptManifest is returned (wrapped, naming the object) when a
// manifest checkpoint or commit cannot be parsed or breaks the invariants.
var ErrCorruptManifest = errors.New("lake: corrupt manifest")

// errConflict is what apply returns when a delta does not fit the
// manifest it is applied to: a bug in the writer that built it, or a log
// written by something else.
var errConflict = errors.New("lake: commit does not fit the manifest")

// apply returns the manifest that d makes of m, checking on the way what
// exactly-once rests on: removed files were live, purged ones replaced,
// added ones new, their ranges below their partition's Next and not
// overlapping another live file of the same period and partition, and no
// partition's Next or Epoch going back.
func apply(m *manifest, d *delta) (*manifest, error) {
	if d.Version != m.Version+1 {
		return nil, fmt.Errorf("%w: version %d after %d", errConflict, d.Version, m.Version)
	}
	next := &manifest{Format: manifestFormat, Topic: m.Topic, Version: d.Version}
	next.Partitions = slices.Clone(m.Partitions)
	for _, ps := range d.Partitions {
		i, ok := slices.BinarySearchFunc(next.Partitions, ps.Partition, func(x partitionState, p int) int { return cmp.Compare(x.Partition, p) })
		if !ok {
			next.Partitions = slices.Insert(next.Partitions, i, ps)
			continue
		}
		old := next.Partitions[i]
		if ps.Next < old.Next || ps.Epoch < old.Epoch {
			return nil, fmt.Errorf("%w: partition %d would go back from next %d epoch %d to next %d epoch %d",
				errConflict, ps.Partition, old.Next, old.Epoch, ps.Next, ps.Epoch)
		}
		next.Partitions[i] = ps
	}
	m.cloneInto(&next.manifestFiles)
	paths := next.paths
	at := d.Time / 1e6
	// Purges first: a file this delta removes is not replaced yet.
	purged := make(map[string]bool, len(d.Purge))
	for _, p := range d.Purge {
		if r, ok := paths.Get(pathRef{path: p}); !ok || !r.replaced || purged[p] {
			return nil, fmt.Errorf("%w: purging a file that was not replaced: %s", errConflict, p)
		}
		purged[p] = true
		paths.Delete(pathRef{path: p})
	}
	for _, p := range d.Remove {
		r, ok := paths.Get(pathRef{path: p})
		if !ok || r.replaced {
			return nil, fmt.Errorf("%w: removing a file that is not live: %s", errConflict, p)
		}
		next.removeFile(r.start, p)
		paths.ReplaceOrInsert(pathRef{path: p, replaced: true})
	}
	// Replaced files are those of the grace period, few whatever the lake
	// holds.
	next.Replaced = make([]replacedEntry, 0, len(m.Replaced)+len(d.Remove))
	for _, r := range m.Replaced {
		if !purged[r.Path] {
			next.Replaced = append(next.Replaced, r)
		}
	}
	for _, p := range d.Remove {
		next.Replaced = append(next.Replaced, replacedEntry{Path: p, Version: d.Version, At: at})
	}
	for i := range d.Add {
		f := d.Add[i]
		if _, taken := paths.ReplaceOrInsert(pathRef{path: f.Path, start: f.Start}); taken {
			return nil, fmt.Errorf("%w: file %s is already in the lake", errConflict, f.Path)
		}
		// A compacted file keeps the newest Added of its inputs (its
		// maker sets it), so that recomputation still sees late rows
		// in it; any other file is added by this version.
		if !f.Compacted || f.Added <= 0 || f.Added > d.Version {
			f.Added = d.Version
		}
		next.addFile(&f)
	}
	if err := next.checkFiles(d.Add); err != nil {
		return nil, fmt.Errorf("%w: %w", errConflict, err)
	}
	return next, nil
}

// checkFiles verifies the invariants for the files fs (all live files when
// fs is nil): each is well formed, answers only for offsets below its
// partitions' Next, and no two live files of one period answer for the same
// offset of a partition.
func (m *manifest) checkFiles(fs []fileEntry) error {
	all := fs == nil
	if all {
		fs = m.Files()
	}
	for i := range fs {
		f := &fs[i]
		// No layout's period is longer than a month (FilesIn relies on it).
		if f.End <= f.Start || uint64(f.End)-uint64(f.Start) > uint64(longestPeriod) || len(f.Ranges) == 0 || f.Path == "" || strings.Contains(f.Path, "..") || strings.HasPrefix(f.Path, "/") {
			return fmt.Errorf("file %s: bad entry", f.Path)
		}
		var rows int64
		for j, r := range f.Ranges {
			if r.First > r.Last || r.Rows < 0 || r.Partition < 0 {
				return fmt.Errorf("file %s: bad range %+v", f.Path, r)
			}
			if q := f.Ranges[max(j-1, 0)]; j > 0 && (q.Partition > r.Partition || q.Partition == r.Partition && q.Last >= r.First) {
				return fmt.Errorf("file %s: ranges out of order or overlapping: %+v, %+v", f.Path, q, r)
			}
			if next := m.partition(r.Partition).Next; r.Last >= next {
				return fmt.Errorf("file %s: offsets of partition %d past its next offset %d", f.Path, r.Partition, next)
			}
			rows += r.Rows
		}
		if rows != f.Rows {
			return fmt.Errorf("file %s: its ranges hold %d rows, the file %d", f.Path, rows, f.Rows)
		}
		// Live files of the same period.
		for g := range m.from(f.Start) {
			if g.Start != f.Start {
				break
			}
			if g.Path == f.Path || g.End != f.End || (all && g.Path < f.Path) {
				continue
			}
			if a, b, ok := overlap(f, g); ok {
				return fmt.Errorf("files %s and %s overlap in partition %d ([%d, %d] and [%d, %d])", f.Path, g.Path, a.Partition, a.First, a.Last, b.First, b.Last)
			}
		}
	}
	return nil
}

// overlap finds a partition whose ranges in f and g overlap.
func overlap(f, g *fileEntry) (offsetRange, offsetRange, bool) {
	for _, a := range f.Ranges {
		for _, b := range g.Ranges {
			if a.Partition == b.Partition && a.First <= b.Last && b.First <= a.Last {
				return a, b, true
			}
		}
	}
	return offsetRange{}, offsetRange{}, false
}

// check verifies a whole manifest (one read from storage).
func (m *manifest) check() error {
	if !slices.IsSortedFunc(m.Partitions, func(a, b partitionState) int { return cmp.Compare(a.Partition, b.Partition) }) {
		return errors.New("partitions out of order")
	}
	return m.checkFiles(nil)
}

// Fixed periods of the lake's layouts: an event-time hour, or a day for
// topics partitioned by day.
const (
	hourMicros = int64(time.Hour / time.Microsecond)
	dayMicros  = 24 * hourMicros
)

// periodOf truncates an event time (UTC µs) to the start of its period of
// length size.
func periodOf(t, size int64) int64 {
	q := t / size
	if t < 0 && t%size != 0 {
		q--
	}
	return q * size
}

// periodPath returns the directory of a period, relative to the topic
// directory: dt=YYYY-MM-DD/hour=HH for an hour, dt=YYYY-MM-DD for a day.
func periodPath(start, size int64) string {
	t := time.UnixMicro(start).UTC()
	if size >= dayMicros {
		return "dt=" + t.Format("2006-01-02")
	}
	return fmt.Sprintf("dt=%s/hour=%02d", t.Format("2006-01-02"), t.Hour())
}

// layout cuts a topic's event time into the periods its files hold and its
// directories name: fixed hours or days, or calendar months (UTC), whose
// lengths differ, so a period's end is computed from its start.
type layout struct {
	// size is the length of a fixed period (hourMicros or dayMicros); 0
	// means calendar months.
	size int64
}

// layoutOf returns the layout of a topic's lake.partitioning.
func layoutOf(partitioning string) layout {
	switch partitioning {
	case pipelines.LakeDaily:
		return layout{size: dayMicros}
	case pipelines.LakeMonthly:
		return layout{}
	}
	return layout{size: hourMicros}
}

// start returns the start of the period holding the event time t (UTC µs).
func (l layout) start(t int64) int64 {
	if l.size > 0 {
		return periodOf(t, l.size)
	}
	y, m, _ := time.UnixMicro(t).UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// end returns the end of the period that starts at start: the next one's
// start.
func (l layout) end(start int64) int64 {
	if l.size > 0 {
		return start + l.size
	}
	y, m, _ := time.UnixMicro(start).UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// seq numbers the periods: consecutive periods, consecutive numbers.
func (l layout) seq(start int64) int64 {
	if l.size > 0 {
		return periodOf(start, l.size) / l.size
	}
	y, m, _ := time.UnixMicro(start).UTC().Date()
	return int64(y)*12 + int64(m) - 1
}

// path returns the directory of the period that starts at start, relative
// to the topic directory.
func (l layout) path(start int64) string {
	if l.size > 0 {
		return periodPath(start, l.size)
	}
	return "month=" + time.UnixMicro(start).UTC().Format("2006-01")
}

// inPeriodDir tells whether a path relative to the topic directory lies in
// a period's directory of any layout (dt=… or month=…), where data files
// are, rather than in the manifest's or elsewhere.
func inPeriodDir(path string) bool {
	return strings.HasPrefix(path, "dt=") || strings.HasPrefix(path, "month=")
}

// periodOfPath reads the start of a file's period from its path
// (dt=YYYY-MM-DD/hour=HH/…, dt=YYYY-MM-DD/… or month=YYYY-MM/…), whatever
// the topic's layout is now.
func periodOfPath(path string) (int64, bool) {
	parts := strings.Split(path, "/")
	if len(parts) >= 2 {
		if m, ok := strings.CutPrefix(parts[0], "month="); ok {
			t, err := time.Parse("2006-01", m)
			return t.UnixMicro(), err == nil
		}
	}
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "dt=") {
		return 0, false
	}
	day, err := time.Parse("2006-01-02", strings.TrimPrefix(parts[0], "dt="))
	if err != nil {
		return 0, false
	}
	start := day.UnixMicro()
	if h, ok := strings.CutPrefix(parts[1], "hour="); ok && len(parts) > 2 {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > 23 {
			return 0, false
		}
		start += int64(n) * hourMicros
	}
	return start, true
}

// replacedName is where a replaced file waits out its grace period: hidden,
// so that directory readers no longer see it, in the same directory.
func replacedName(path string) string {
	i := strings.LastIndexByte(path, '/')
	return path[:i+1] + "." + path[i+1:] + ".replaced"
}
