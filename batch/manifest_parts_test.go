package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// logWrites records the names of the manifest log objects written and
// copied (source > target); with failHeads set, writes of checkpoints'
// heads fail (as a crash after the parts would leave them).
type logWrites struct {
	lakestore.Store
	mu             sync.Mutex
	writes, copies []string
	failHeads      bool
	failCopies     bool
}

var errHeadRefused = errors.New("test: the head's write refused")

func (s *logWrites) WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error {
	s.mu.Lock()
	s.writes = append(s.writes, key[strings.LastIndexByte(key, '/')+1:])
	fail := s.failHeads && strings.HasSuffix(key, checkpointExt)
	s.mu.Unlock()
	if fail {
		return errHeadRefused
	}
	return s.Store.WriteFile(ctx, key, data, exclusive)
}

func (s *logWrites) Copy(ctx context.Context, from, to string) error {
	s.mu.Lock()
	s.copies = append(s.copies, from[strings.LastIndexByte(from, '/')+1:]+">"+to[strings.LastIndexByte(to, '/')+1:])
	fail := s.failCopies
	s.mu.Unlock()
	if fail {
		return errors.New("test: NotImplemented: copies refused")
	}
	return s.Store.Copy(ctx, from, to)
}

// take returns what was written and copied since the last call, sorted.
func (s *logWrites) take() (writes, copies []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writes, copies = s.writes, s.copies
	s.writes, s.copies = nil, nil
	slices.Sort(writes)
	slices.Sort(copies)
	return writes, copies
}

// openParted opens the manifest of st through a logWrites, with parts of
// 4 files (a lake of 8 files or more is checkpointed in parts).
func openParted(t *testing.T, st lakestore.Store) (*logWrites, *manifestStore) {
	t.Helper()
	lw := &logWrites{Store: st}
	ms := openMS(t, lw)
	ms.partFiles = 4
	return lw, ms
}

// TestCheckpointParts: a checkpoint of a large lake is written in parts,
// and the next one writes only the parts in which a file changed (or was
// added), copying the others, also in a process that read the checkpoint
// rather than wrote it; a copy whose source is gone is written anew, as
// is every part when the store refuses copies. Each checkpoint read back
// gives the writer's manifest exactly; the clean-up takes old
// checkpoints' parts with them; a damaged or missing part fails the
// read, naming it.
func TestCheckpointParts(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		lw, ms := openParted(t, st)
		h := t0.UnixMicro()
		for i := range 20 {
			if _, err := ms.commit(ctx, addFile(h+int64(i)*hourMicros, 0, 1)); err != nil {
				t.Fatal(err)
			}
		}
		same := func(what string) {
			t.Helper()
			fresh, err := readManifest(ctx, st, "metrics")
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			want, _ := ms.local().MarshalJSON()
			got, _ := fresh.MarshalJSON()
			if string(got) != string(want) {
				t.Errorf("%s: the manifest read back differs from the writer's:\n%s\n%s", what, got, want)
			}
		}
		expect := func(what string, writes, copies []string) {
			t.Helper()
			gw, gc := lw.take()
			if fmt.Sprint(gw) != fmt.Sprint(writes) || fmt.Sprint(gc) != fmt.Sprint(copies) {
				t.Errorf("%s: wrote %v and copied %v, want %v and %v", what, gw, gc, writes, copies)
			}
		}
		lw.take()
		v1 := ms.local().Version
		if err := ms.checkpoint(ctx, ms.local()); err != nil {
			t.Fatal(err)
		}
		// 20 files in parts of 4, none to copy.
		expect("first checkpoint", []string{
			partName(v1, 0), partName(v1, 1), partName(v1, 2), partName(v1, 3), partName(v1, 4),
			versionName(v1) + checkpointExt, lastCheckpoint}, nil)
		same("first checkpoint")

		// A merge replaces the file of hour 9 (in part 2) and a file is
		// added past the last: parts 2 and 4 are written, 0, 1 and 3
		// copied.
		if _, err := ms.commit(ctx, func(m *manifest) (*delta, error) {
			f := m.FilesIn(h+9*hourMicros, h+10*hourMicros)[0]
			c := f
			c.Path, c.Compacted = strings.Replace(f.Path, "p0-", "c-", 1), true
			return &delta{Remove: []string{f.Path}, Add: []fileEntry{c}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		m, err := ms.commit(ctx, addFile(h+30*hourMicros, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		v2 := m.Version
		lw.take()
		if err := ms.checkpoint(ctx, m); err != nil {
			t.Fatal(err)
		}
		expect("second checkpoint",
			[]string{partName(v2, 2), partName(v2, 4), versionName(v2) + checkpointExt, lastCheckpoint},
			[]string{partName(v1, 0) + ">" + partName(v2, 0), partName(v1, 1) + ">" + partName(v2, 1), partName(v1, 3) + ">" + partName(v2, 3)})
		same("second checkpoint")

		// A third checkpoint deletes the first with its parts: the log
		// holds the newest two, their parts, and the records after the
		// older.
		if m, err = ms.commit(ctx, addFile(h+31*hourMicros, 0, 1)); err != nil {
			t.Fatal(err)
		}
		v3 := m.Version
		if err := ms.checkpoint(ctx, m); err != nil {
			t.Fatal(err)
		}
		es, err := st.List(ctx, "metrics/_manifest/", "")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			name := e.Key[strings.LastIndexByte(e.Key, '/')+1:]
			if _, kind, _ := parseLogKey(name); kind == logPart && e.Key != ms.dir+partsDir+name {
				t.Errorf("part %s not in %s", e.Key, partsDir)
			}
			names = append(names, name)
		}
		slices.Sort(names)
		var want []string
		for _, v := range []int64{v2, v3} {
			for k := range 5 {
				want = append(want, partName(v, k))
			}
			want = append(want, versionName(v)+checkpointExt)
		}
		want = append(want, versionName(v3)+recordExt, lastCheckpoint)
		slices.Sort(want)
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Errorf("log after the third checkpoint:\n%v\nwant\n%v", names, want)
		}
		same("third checkpoint, the first deleted")

		// Another process, which read the checkpoint in parts, copies
		// them in its own.
		_, other := openParted(t, lw)
		om, err := other.commit(ctx, addFile(h+40*hourMicros, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		lw.take()
		if err := other.checkpoint(ctx, om); err != nil {
			t.Fatal(err)
		}
		ov := om.Version
		expect("another process's checkpoint",
			[]string{partName(ov, 4), versionName(ov) + checkpointExt, lastCheckpoint},
			[]string{partName(v3, 0) + ">" + partName(ov, 0), partName(v3, 1) + ">" + partName(ov, 1), partName(v3, 2) + ">" + partName(ov, 2), partName(v3, 3) + ">" + partName(ov, 3)})
		if err := ms.refresh(ctx); err != nil {
			t.Fatal(err)
		}
		same("another process's checkpoint")

		// A part to copy that is gone is written anew.
		if err := st.Delete(ctx, ms.partKey(v3, 0)); err != nil {
			t.Fatal(err)
		}
		if m, err = ms.commit(ctx, addFile(h+32*hourMicros, 0, 1)); err != nil {
			t.Fatal(err)
		}
		v4 := m.Version
		lw.take()
		if err := ms.checkpoint(ctx, m); err != nil {
			t.Fatal(err)
		}
		if w, _ := lw.take(); !slices.Contains(w, partName(v4, 0)) {
			t.Errorf("part 0, its source gone, not written: %v", w)
		}
		same("a part's source gone")

		// A store that refuses copies gets every part written.
		lw.failCopies = true
		if m, err = ms.commit(ctx, addFile(h+33*hourMicros, 0, 1)); err != nil {
			t.Fatal(err)
		}
		v5 := m.Version
		lw.take()
		if err := ms.checkpoint(ctx, m); err != nil {
			t.Fatal(err)
		}
		lw.failCopies = false
		w, c := lw.take()
		if len(c) < 4 {
			t.Errorf("copies refused: tried %v, want the unchanged parts", c)
		}
		for _, x := range c {
			if _, to, _ := strings.Cut(x, ">"); !strings.HasPrefix(to, versionName(v5)) || !slices.Contains(w, to) {
				t.Errorf("copies refused: %s not written instead (wrote %v)", x, w)
			}
		}
		same("copies refused")
		v4 = v5

		// A damaged part fails the read, naming it; so does a missing one.
		key := ms.partKey(v4, 1)
		good, err := st.ReadFile(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(good)
		bad[len(bad)/2] ^= 1
		for what, b := range map[string][]byte{"damaged": bad, "cut short": good[:len(good)-1]} {
			if err := st.WriteFile(ctx, key, b, false); err != nil {
				t.Fatal(err)
			}
			if _, err := readManifest(ctx, st, "metrics"); !errors.Is(err, ErrCorruptManifest) || !strings.Contains(err.Error(), partName(v4, 1)) {
				t.Errorf("%s part: %v", what, err)
			}
		}
		if err := st.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := readManifest(ctx, st, "metrics"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), partName(v4, 1)) {
			t.Errorf("missing part: %v", err)
		}
	})
}

// TestPlanParts: over rounds of files added anywhere and merged, each
// plan lists the manifest's files in order, a part it copies holds
// exactly the previous part's files, every part is under 2 × size files
// and all but the last at least size/2, and a round that only appends
// copies every part but the last two.
func TestPlanParts(t *testing.T) {
	const size = 16
	rng := rand.New(rand.NewPCG(3, 5))
	m := &manifest{Format: manifestFormat, Topic: "metrics"}
	m.setFiles(nil)
	var prev *writtenCheckpoint
	var prevPlan []partPlan
	n := 0
	for round := range 200 {
		next := &manifest{Format: manifestFormat, Topic: "metrics", Version: m.Version + 1}
		m.cloneInto(&next.manifestFiles)
		appendOnly := round%3 == 0
		for range rng.IntN(40) {
			start := int64(rng.IntN(500)) * hourMicros
			if appendOnly {
				start = int64(500+n) * hourMicros
			}
			f := &fileEntry{Path: fmt.Sprintf("f%d", n), Start: start, End: start + hourMicros, Rows: 1}
			next.paths.ReplaceOrInsert(pathRef{path: f.Path, start: f.Start})
			next.addFile(f)
			n++
		}
		if !appendOnly {
			// A merge: a period's files replaced by one.
			if fs := next.FilesIn(int64(rng.IntN(500))*hourMicros, 600*hourMicros); len(fs) > 1 {
				c := &fileEntry{Path: fmt.Sprintf("c%d", n), Start: fs[0].Start, End: fs[0].End, Rows: 1}
				for _, f := range fs {
					if f.Start == c.Start {
						next.removeFile(f.Start, f.Path)
					}
				}
				next.addFile(c)
				n++
			}
		}
		plan := planParts(next, prev, size)
		var got []*fileEntry
		copied := 0
		for k, p := range plan {
			got = append(got, p.files...)
			if len(p.files) >= 2*size || (k < len(plan)-1 && len(p.files) < size/2) || len(p.files) == 0 {
				t.Fatalf("round %d: part %d of %d holds %d files", round, k, len(plan), len(p.files))
			}
			if p.from >= 0 {
				copied++
				if !slices.Equal(p.files, prevPlan[p.from].files) {
					t.Fatalf("round %d: part %d copies part %d of other files", round, k, p.from)
				}
			}
		}
		if !slices.Equal(got, slices.Collect(next.all())) {
			t.Fatalf("round %d: the plan's files are not the manifest's", round)
		}
		if appendOnly && prev != nil && copied < len(prevPlan)-2 {
			t.Errorf("round %d, appends only: %d of %d parts copied", round, copied, len(prevPlan))
		}
		parts := make([]checkpointPart, len(plan))
		for k, p := range plan {
			parts[k].Files = len(p.files)
		}
		m, prev, prevPlan = next, &writtenCheckpoint{m: next, parts: parts}, plan
	}
	if m.fileCount() < 1000 {
		t.Fatalf("only %d files after the rounds", m.fileCount())
	}
}

// TestCheckpointPartsWithoutHead: a checkpoint whose parts were written
// but not its head (a crash, a refused write) changes nothing readers
// see; its parts are deleted by the clean-up after the next checkpoints,
// and the next checkpoint copies nothing of them.
func TestCheckpointPartsWithoutHead(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		lw, ms := openParted(t, st)
		h := t0.UnixMicro()
		commit := func(i int) *manifest {
			t.Helper()
			m, err := ms.commit(ctx, addFile(h+int64(i)*hourMicros, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		for i := range 12 {
			commit(i)
		}
		v1 := ms.local().Version
		if err := ms.checkpoint(ctx, ms.local()); err != nil {
			t.Fatal(err)
		}
		lw.failHeads = true
		m := commit(12)
		if err := ms.checkpoint(ctx, m); !errors.Is(err, errHeadRefused) {
			t.Fatalf("checkpoint with its head refused: %v", err)
		}
		lw.failHeads = false
		orphans := []string{ms.partKey(m.Version, 0), ms.partKey(m.Version, 1), ms.partKey(m.Version, 2)}
		for _, k := range orphans {
			if _, err := st.ReadFile(ctx, k); err != nil {
				t.Fatalf("part %s of the checkpoint without head: %v", k, err)
			}
		}
		fresh, err := readManifest(ctx, st, "metrics")
		if err != nil || fresh.Version != m.Version || fresh.fileCount() != 13 {
			t.Fatalf("read with a checkpoint's parts and no head: %v files, %v", fresh, err)
		}
		// The next checkpoint copies from the last one written (v1).
		m = commit(13)
		lw.take()
		if err := ms.checkpoint(ctx, m); err != nil {
			t.Fatal(err)
		}
		_, copies := lw.take()
		for _, c := range copies {
			if !strings.HasPrefix(c, versionName(v1)) {
				t.Errorf("copied %s, not from the checkpoint of version %d", c, v1)
			}
		}
		if len(copies) != 2 {
			t.Errorf("copied %v, want parts 0 and 1 of version %d", copies, v1)
		}
		// Two checkpoints on, the clean-up has deleted the orphans.
		if err := ms.checkpoint(ctx, commit(14)); err != nil {
			t.Fatal(err)
		}
		for _, k := range orphans {
			if _, err := st.ReadFile(ctx, k); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("part %s of the checkpoint without head still there: %v", k, err)
			}
		}
		fresh, err = readManifest(ctx, st, "metrics")
		if err != nil || fresh.Version != ms.local().Version || fresh.fileCount() != 15 {
			t.Fatalf("read after the clean-up: %v, %v", fresh, err)
		}
	})
}
