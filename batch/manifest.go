package batch

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// manifestName is the file, in a topic's lake directory, that says which
// Parquet files make up the topic's lake; docs/lake-format.md specifies it.
// The leading underscore keeps Hive-style readers (pyarrow, Spark) from
// taking it for data.
const manifestName = "_manifest.json"

// manifestLock is the file, next to the manifest, that writers in several
// processes lock while they change the manifest.
const manifestLock = "_manifest.lock"

// manifestFormat is the version of the manifest's JSON layout.
const manifestFormat = 1

// manifest is one committed state of a topic's lake. A reader that lists
// files from one manifest sees every event of the offset ranges it covers
// exactly once, whatever the writer and compaction do meanwhile. Manifests
// handed out are never modified.
type manifest struct {
	Format  int    `json:"format"`
	Topic   string `json:"topic"`
	Version int64  `json:"version"`
	// Partitions records, per partition, what the lake holds of it.
	Partitions []partitionState `json:"partitions"`
	// Files are the live data files, ordered by hour, partition, first offset.
	Files []fileEntry `json:"files"`
	// Replaced are files that compaction merged into others; they are out
	// of the dataset but kept (hidden) for readers of older manifests until
	// their grace period ends.
	Replaced []replacedEntry `json:"replaced,omitempty"`
}

// partitionState is what the lake holds of one partition.
type partitionState struct {
	Partition int `json:"partition"`
	// Next is the first offset not in the lake: every event of the
	// partition with an offset below Next is in exactly one live file.
	Next int64 `json:"next"`
	// Ingest is the ingest time (UTC µs) of the last entry below Next.
	Ingest int64 `json:"ingest"`
	// Epoch is the ownership epoch of the lake writer that committed the
	// partition last (see docs/cluster.md): a writer of a lower epoch, one
	// the partition has since moved away from, may no longer commit it.
	Epoch uint64 `json:"epoch,omitempty"`
}

// fileEntry describes one live data file.
type fileEntry struct {
	// Path is relative to the topic directory, with forward slashes:
	// dt=YYYY-MM-DD/hour=HH/p<partition>-<first>-<last>.parquet.
	Path      string `json:"path"`
	Hour      int64  `json:"hour"` // start of the event-time hour, UTC µs
	Partition int    `json:"partition"`
	// First and Last bound the offset range the file answers for: it holds
	// every event of the partition in [First, Last] whose event time falls
	// in Hour, and no other.
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"bytes"`
	// CRC32C is the CRC-32C (Castagnoli) of the whole file; readers check
	// it before trusting the file.
	CRC32C uint32 `json:"crc32c"`
	// MinTime and MaxTime bound the rows' event times (UTC µs).
	MinTime int64 `json:"min_time"`
	MaxTime int64 `json:"max_time"`
	// Added is the manifest version that brought the file's newest rows
	// into the lake: the version that added it, or for a compacted file
	// the largest Added of the files it replaced. A recomputation that
	// last read version V recomputes the hours of files with Added > V.
	Added int64 `json:"added"`
	// Compacted marks a file made by compaction.
	Compacted bool `json:"compacted,omitempty"`
}

// replacedEntry is a file compaction took out of the dataset.
type replacedEntry struct {
	Path string `json:"path"`
	// Version is the manifest version that replaced it.
	Version int64 `json:"version"`
	// At is when (Unix seconds) it was replaced.
	At int64 `json:"at"`
}

// partition returns the state of partition p (zero if the lake holds none).
func (m *manifest) partition(p int) partitionState {
	for _, ps := range m.Partitions {
		if ps.Partition == p {
			return ps
		}
	}
	return partitionState{Partition: p}
}

// clone returns a deep copy to build the next version from.
func (m *manifest) clone() *manifest {
	c := *m
	c.Partitions = slices.Clone(m.Partitions)
	c.Files = slices.Clone(m.Files)
	c.Replaced = slices.Clone(m.Replaced)
	return &c
}

// Hours lists the distinct hours (UTC µs) holding live files, ascending.
func (m *manifest) Hours() []int64 {
	var hs []int64
	for _, f := range m.Files {
		hs = append(hs, f.Hour)
	}
	slices.Sort(hs)
	return slices.Compact(hs)
}

// FilesIn returns the live files of hours in [from, to) (UTC µs).
func (m *manifest) FilesIn(from, to int64) []fileEntry {
	var out []fileEntry
	for _, f := range m.Files {
		if f.Hour >= from && f.Hour < to {
			out = append(out, f)
		}
	}
	return out
}

// filesByHour returns the live files by hour, in manifest order: one pass
// where FilesIn per hour would read the whole list once per hour.
func (m *manifest) filesByHour() map[int64][]fileEntry {
	out := map[int64][]fileEntry{}
	for _, f := range m.Files {
		out[f.Hour] = append(out[f.Hour], f)
	}
	return out
}

func sortFiles(fs []fileEntry) {
	slices.SortFunc(fs, func(a, b fileEntry) int {
		if a.Hour != b.Hour {
			return cmp.Compare(a.Hour, b.Hour)
		}
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return cmp.Compare(a.First, b.First)
	})
}

// ErrCorruptManifest is returned (wrapped, naming the file) when a manifest
// cannot be parsed or breaks its invariants.
var ErrCorruptManifest = errors.New("lake: corrupt manifest")

// readManifest reads the manifest of the topic lake directory dir. A
// missing manifest is an empty lake (version 0).
func readManifest(dir, topic string) (*manifest, error) {
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &manifest{Format: manifestFormat, Topic: topic}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake: %w", err)
	}
	m := new(manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCorruptManifest, path, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%w %s: format %d, want %d", ErrCorruptManifest, path, m.Format, manifestFormat)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrCorruptManifest, path, err)
	}
	return m, nil
}

// check verifies the invariants exactly-once rests on: within one hour and
// partition, offset ranges of live files do not overlap, and no live file
// answers for offsets at or past its partition's Next.
func (m *manifest) check() error {
	fs := slices.Clone(m.Files)
	sortFiles(fs)
	for i, f := range fs {
		if f.First > f.Last || strings.Contains(f.Path, "..") {
			return fmt.Errorf("file %s: bad entry", f.Path)
		}
		if f.Last >= m.partition(f.Partition).Next {
			return fmt.Errorf("file %s: offsets past the partition's next offset %d", f.Path, m.partition(f.Partition).Next)
		}
		if i > 0 {
			p := fs[i-1]
			if p.Hour == f.Hour && p.Partition == f.Partition && p.Last >= f.First {
				return fmt.Errorf("files %s and %s overlap", p.Path, f.Path)
			}
		}
	}
	return nil
}

// writeManifest makes m the topic's manifest atomically: temporary file,
// fsync, rename, fsync of the directory. Readers see the old or the new
// manifest, never a mix; after a crash the old one or the new one is there.
func writeManifest(dir string, m *manifest) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, manifestName), append(b, '\n'))
}

// writeFileAtomic replaces path by data durably: temp file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lake: writing %s: %w", path, err)
	}
	return nil
}

// manifestStore serialises changes to one topic's manifest and hands out
// snapshots. Readers in this process pin the snapshot they read from, so
// that files it lists are not deleted under them.
//
// Several processes may write one lake (each its own partitions): a change
// holds an exclusive lock on the topic directory's lock file while it reads
// the manifest again, applies the change and writes the next version, and a
// snapshot reads the file again when another process changed it.
type manifestStore struct {
	dir   string
	topic string

	mu    sync.Mutex // serialises writers; guards cur, stamp and pins
	cur   *manifest
	stamp fileStamp     // of the manifest file cur was read from
	pins  map[int64]int // manifest version → readers holding it
}

// fileStamp tells whether a file was replaced since it was read: every
// write of the manifest renames a new file over it, with a new inode.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	fs := fileStamp{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fs.ino = sys.Ino
	}
	return fs
}

func openManifestStore(dir, topic string) (*manifestStore, error) {
	stamp := stampOf(filepath.Join(dir, manifestName))
	m, err := readManifest(dir, topic)
	if err != nil {
		return nil, err
	}
	return &manifestStore{dir: dir, topic: topic, cur: m, stamp: stamp, pins: map[int64]int{}}, nil
}

// refreshLocked reads the manifest again if another process wrote it.
func (s *manifestStore) refreshLocked() error {
	path := filepath.Join(s.dir, manifestName)
	stamp := stampOf(path)
	if stamp == s.stamp {
		return nil
	}
	m, err := readManifest(s.dir, s.topic)
	if err != nil {
		return err
	}
	if m.Version >= s.cur.Version {
		s.cur = m
	}
	s.stamp = stamp
	return nil
}

// snapshot returns the current manifest; callers must not modify it.
func (s *manifestStore) snapshot() *manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A manifest that cannot be read keeps the last good one; the next
	// change reports the error.
	_ = s.refreshLocked()
	return s.cur
}

// pin returns the current manifest and a func that releases it; until
// released, files it lists stay on disk.
func (s *manifestStore) pin() (*manifest, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked() // as in snapshot
	m := s.cur
	s.pins[m.Version]++
	var once sync.Once
	return m, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pins[m.Version]--; s.pins[m.Version] <= 0 {
				delete(s.pins, m.Version)
			}
		})
	}
}

// oldestPin returns the oldest pinned version, or -1 when none is pinned.
func (s *manifestStore) oldestPin() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := int64(-1)
	for v := range s.pins {
		if old < 0 || v < old {
			old = v
		}
	}
	return old
}

// update builds the next manifest version with change and commits it
// durably. If change or the write fails, the current manifest stays.
func (s *manifestStore) update(change func(m *manifest) error) (*manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockDir(s.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	next := s.cur.clone()
	next.Version++
	next.Format = manifestFormat
	next.Topic = s.topic
	if err := change(next); err != nil {
		return nil, err
	}
	sortFiles(next.Files)
	slices.SortFunc(next.Partitions, func(a, b partitionState) int { return a.Partition - b.Partition })
	if err := next.check(); err != nil {
		return nil, fmt.Errorf("lake: refusing manifest of %s: %w", s.topic, err)
	}
	if err := writeManifest(s.dir, next); err != nil {
		return nil, err
	}
	s.cur = next
	s.stamp = stampOf(filepath.Join(s.dir, manifestName))
	return next, nil
}

// lockDir takes an exclusive lock on dir's manifest lock file, across
// processes; the returned func releases it.
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lake: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, manifestLock), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lake: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lake: lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// setPartition sets partition p's state in m.
func (m *manifest) setPartition(ps partitionState) {
	for i := range m.Partitions {
		if m.Partitions[i].Partition == ps.Partition {
			m.Partitions[i] = ps
			return
		}
	}
	m.Partitions = append(m.Partitions, ps)
}

// hourPath returns the directory of an hour, relative to the topic directory.
func hourPath(hour int64) string {
	t := time.UnixMicro(hour).UTC()
	return fmt.Sprintf("dt=%s/hour=%02d", t.Format("2006-01-02"), t.Hour())
}

// hourOf truncates an event time (UTC µs) to its hour.
func hourOf(t int64) int64 {
	const h = int64(time.Hour / time.Microsecond)
	q := t / h
	if t < 0 && t%h != 0 {
		q--
	}
	return q * h
}

// fileName names a data file by partition and offset range.
func fileName(partition int, first, last int64) string {
	return fmt.Sprintf("p%d-%d-%d.parquet", partition, first, last)
}

// replacedName is where a replaced file waits out its grace period: hidden,
// so that directory readers no longer see it, in the same directory, so
// that the rename is atomic.
func replacedName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".replaced")
}
