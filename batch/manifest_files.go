package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"

	"github.com/google/btree"
)

// manifestFiles holds what a manifest version knows of files: the live
// ones ordered by period start, then path, every path it names, live or
// replaced, and the period starts that two live files or more share. All
// are copy-on-write B-trees shared with the versions before and after: a
// commit clones them in constant time and copies only the nodes its files
// touch, so applying it costs O(changes × log files) whatever the lake
// holds (a copy of every entry, as before, took 17 ms a commit at 100,000
// files and grew with them).
type manifestFiles struct {
	files *btree.BTreeG[*fileEntry] // nil: none
	paths *btree.BTreeG[pathRef]    // nil: none
	// crowded are the starts of two live files or more: the only periods
	// compaction can have work in. Its pass after every flush walks them
	// alone, not a lake's thousands of closed periods of one file each.
	crowded *btree.BTreeG[int64] // nil: none
	rows    int64                // the live files' rows together
	periods int                  // the period starts of live files, each once
	// cloneMu guards Clone, which marks the shared nodes read-only by
	// writing to the tree it clones: two versions made from one at once
	// (a commit and a refresh) must not race on it.
	cloneMu sync.Mutex
}

// pathRef is a path the manifest names: a live file's, with the period
// start that orders it among files, or a replaced file's.
type pathRef struct {
	path     string
	start    int64
	replaced bool
}

// treeDegree: nodes of up to 31 entries. The files tree holds pointers,
// so copying a node on write moves 248 bytes, not 31 entries.
const treeDegree = 16

func lessFile(a, b *fileEntry) bool {
	return a.Start < b.Start || a.Start == b.Start && a.Path < b.Path
}

func lessPath(a, b pathRef) bool { return a.path < b.path }

// all yields the live files in order. They are shared with other versions:
// callers must not change them.
func (m *manifest) all() iter.Seq[*fileEntry] {
	return func(yield func(*fileEntry) bool) {
		if m.files != nil {
			m.files.Ascend(func(f *fileEntry) bool { return yield(f) })
		}
	}
}

// from yields the live files whose period starts at or after start, in
// order.
func (m *manifest) from(start int64) iter.Seq[*fileEntry] {
	return func(yield func(*fileEntry) bool) {
		if m.files != nil {
			m.files.AscendGreaterOrEqual(&fileEntry{Start: start}, func(f *fileEntry) bool { return yield(f) })
		}
	}
}

// Files returns a copy of the live files, in order.
func (m *manifest) Files() []fileEntry {
	out := make([]fileEntry, 0, m.fileCount())
	for f := range m.all() {
		out = append(out, *f)
	}
	return out
}

// periodsHeld is how many periods (hours, days or months) the live files
// are in: the files a lake compacted whole holds.
func (m *manifest) periodsHeld() int { return m.periods }

// rowsHeld is the rows of the live files together.
func (m *manifest) rowsHeld() int64 { return m.rows }

func (m *manifest) fileCount() int {
	if m.files == nil {
		return 0
	}
	return m.files.Len()
}

// isLive tells whether a live file has path.
func (m *manifest) isLive(path string) bool {
	if m.paths == nil {
		return false
	}
	r, ok := m.paths.Get(pathRef{path: path})
	return ok && !r.replaced
}

// crowdedStarts yields, in order, the period starts that two live files
// or more share.
func (m *manifest) crowdedStarts() iter.Seq[int64] {
	return func(yield func(int64) bool) {
		if m.crowded != nil {
			m.crowded.Ascend(func(s int64) bool { return yield(s) })
		}
	}
}

// cloneInto gives c (the next version's, empty) the trees of m to build
// on.
func (m *manifest) cloneInto(c *manifestFiles) {
	m.cloneMu.Lock()
	defer m.cloneMu.Unlock()
	c.rows, c.periods = m.rows, m.periods
	c.files, c.paths, c.crowded = btree.NewG(treeDegree, lessFile), btree.NewG(treeDegree, lessPath), btree.NewOrderedG[int64](treeDegree)
	if m.files != nil {
		c.files = m.files.Clone()
	}
	if m.paths != nil {
		c.paths = m.paths.Clone()
	}
	if m.crowded != nil {
		c.crowded = m.crowded.Clone()
	}
}

// addFile makes f live (its path already taken in paths).
func (mf *manifestFiles) addFile(f *fileEntry) {
	mf.files.ReplaceOrInsert(f)
	mf.rows += f.Rows
	switch mf.filesAt(f.Start) {
	case 1:
		mf.periods++
	case 2:
		mf.crowded.ReplaceOrInsert(f.Start)
	}
}

// removeFile drops the live file at start and path, if there is one.
func (mf *manifestFiles) removeFile(start int64, path string) {
	gone, ok := mf.files.Delete(&fileEntry{Start: start, Path: path})
	if !ok {
		return
	}
	mf.rows -= gone.Rows
	switch mf.filesAt(start) {
	case 0:
		mf.periods--
	case 1:
		mf.crowded.Delete(start)
	}
}

// filesAt returns how many live files start at start: 0, 1, or 2 for two
// or more.
func (mf *manifestFiles) filesAt(start int64) int {
	n := 0
	mf.files.AscendGreaterOrEqual(&fileEntry{Start: start}, func(f *fileEntry) bool {
		if f.Start != start {
			return false
		}
		n++
		return n < 2
	})
	return n
}

// setFiles makes fs (in any order) the live files and indexes them and
// the replaced files' paths, refusing a path named twice.
func (m *manifest) setFiles(fs []*fileEntry) error {
	m.files, m.paths, m.crowded = btree.NewG(treeDegree, lessFile), btree.NewG(treeDegree, lessPath), btree.NewOrderedG[int64](treeDegree)
	for _, f := range fs {
		if _, dup := m.paths.ReplaceOrInsert(pathRef{path: f.Path, start: f.Start}); dup {
			return fmt.Errorf("file %s listed twice", f.Path)
		}
		m.addFile(f)
	}
	for _, r := range m.Replaced {
		if _, dup := m.paths.ReplaceOrInsert(pathRef{path: r.Path, replaced: true}); dup {
			return fmt.Errorf("file %s listed twice", r.Path)
		}
	}
	return nil
}

// manifestJSON is a manifest as checkpoints hold it (docs/lake-format.md).
type manifestJSON struct {
	Format     int              `json:"format"`
	Topic      string           `json:"topic"`
	Version    int64            `json:"version"`
	Partitions []partitionState `json:"partitions"`
	Files      []*fileEntry     `json:"files"` // MarshalJSON appends them itself
	Replaced   []replacedEntry  `json:"replaced,omitempty"`
}

// MarshalJSON encodes m as a checkpoint holds it: the bytes encoding/json
// makes of manifestJSON, with the file entries, nearly all of a
// checkpoint, appended by hand (encoding/json took 0.28 s for the 22 MiB
// of a lake of 100,000 files, every 100 commits).
func (m *manifest) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(manifestJSON{Format: m.Format, Topic: m.Topic, Version: m.Version, Partitions: m.Partitions})
	if err != nil {
		return nil, err
	}
	// head ends with "files":null}: the files go in its place.
	head = head[:len(head)-len("null}")]
	b := make([]byte, 0, len(head)+m.fileCount()*256)
	b = append(b, head...)
	if m.fileCount() == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for f := range m.all() {
			if b[len(b)-1] != '[' {
				b = append(b, ',')
			}
			if b, err = f.appendJSON(b); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(m.Replaced) > 0 {
		r, err := json.Marshal(m.Replaced)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, `,"replaced":`...), r...), '}')
		return b, nil
	}
	return append(b, '}'), nil
}

// appendJSON appends f as encoding/json encodes it.
func (f *fileEntry) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"path":`...)
	if plainJSON(f.Path) {
		b = append(append(append(b, '"'), f.Path...), '"')
	} else {
		q, err := json.Marshal(f.Path)
		if err != nil {
			return nil, err
		}
		b = append(b, q...)
	}
	b = strconv.AppendInt(append(b, `,"start":`...), f.Start, 10)
	b = strconv.AppendInt(append(b, `,"end":`...), f.End, 10)
	b = append(b, `,"ranges":`...)
	if f.Ranges == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range f.Ranges {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(append(b, `{"partition":`...), int64(r.Partition), 10)
			b = strconv.AppendInt(append(b, `,"first":`...), r.First, 10)
			b = strconv.AppendInt(append(b, `,"last":`...), r.Last, 10)
			b = strconv.AppendInt(append(b, `,"rows":`...), r.Rows, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = strconv.AppendInt(append(b, `,"rows":`...), f.Rows, 10)
	b = strconv.AppendInt(append(b, `,"bytes":`...), f.Bytes, 10)
	b = strconv.AppendUint(append(b, `,"crc32c":`...), uint64(f.CRC32C), 10)
	b = strconv.AppendInt(append(b, `,"min_time":`...), f.MinTime, 10)
	b = strconv.AppendInt(append(b, `,"max_time":`...), f.MaxTime, 10)
	b = strconv.AppendInt(append(b, `,"added":`...), f.Added, 10)
	if f.Compacted {
		b = append(b, `,"compacted":true`...)
	}
	return append(b, '}'), nil
}

// plainJSON tells whether encoding/json writes s as it is between quotes
// (it escapes control characters, quotes, backslashes, <, > and &, and
// checks UTF-8).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// UnmarshalJSON takes a checkpoint; its files must be listed in order
// (period start, then path) and each path once.
func (m *manifest) UnmarshalJSON(b []byte) error {
	var j manifestJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	m.Format, m.Topic, m.Version, m.Partitions, m.Replaced = j.Format, j.Topic, j.Version, j.Partitions, j.Replaced
	return m.setOrderedFiles(j.Files)
}

// setOrderedFiles is setFiles for files as a checkpoint lists them,
// refusing them out of order (period start, then path).
func (m *manifest) setOrderedFiles(files []*fileEntry) error {
	for i := range files {
		if files[i] == nil {
			return errors.New("a file listed as null")
		}
		if i > 0 && !lessFile(files[i-1], files[i]) {
			return errors.New("files out of order")
		}
	}
	return m.setFiles(files)
}
