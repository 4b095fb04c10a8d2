package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// manifestModel is what a manifest holds, kept the plain way: live files
// by path and the replaced files in order.
type manifestModel struct {
	live     map[string]fileEntry
	replaced []replacedEntry
}

func (mm *manifestModel) files() []fileEntry {
	fs := slices.Collect(maps.Values(mm.live))
	slices.SortFunc(fs, func(a, b fileEntry) int {
		if a.Start != b.Start {
			return int(a.Start - b.Start)
		}
		return strings.Compare(a.Path, b.Path)
	})
	return fs
}

// crowded is the period starts two live files or more share, and periods
// how many starts the live files have.
func (mm *manifestModel) crowded() (crowded []int64, periods int) {
	n := map[int64]int{}
	for _, f := range mm.live {
		n[f.Start]++
	}
	for s, k := range n {
		if k >= 2 {
			crowded = append(crowded, s)
		}
	}
	slices.Sort(crowded)
	return crowded, len(n)
}

// TestApplyMatchesModel: 2,000 random commits (files added across 300
// periods, live files removed, replaced ones purged, and deltas that break
// a rule: a path taken, a file not live removed, one not replaced purged)
// leave each version's files, replaced files, paths, periods and crowded
// periods exactly as a plain model of the same commits, and so does each kept
// version read back from its checkpoint; a refused delta changes nothing. Versions
// made on the way (every 25th is kept) still read as they did when made,
// though later versions share their trees and changed them.
func TestApplyMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := &manifest{Format: manifestFormat, Topic: "t"}
	mm := &manifestModel{live: map[string]fileEntry{}}
	next := int64(0)
	type seen struct {
		m       *manifest
		json    string
		crowded []int64
	}
	var versions []seen
	refused := 0
	for v := int64(1); v <= 2000; v++ {
		d := &delta{Version: v, Time: v * 1e6}
		liveNow := slices.Sorted(maps.Keys(mm.live))
		switch k := rng.IntN(10); {
		case k < 5 || len(liveNow) == 0: // a flush: files in random periods
			for range 1 + rng.IntN(4) {
				h := t0.UnixMicro() + int64(rng.IntN(300))*hourMicros
				f := testFile(h, 0, next, next)
				f.Path = fmt.Sprintf("%s/f%d.parquet", periodPath(h, hourMicros), next)
				f.Rows = int64(1 + rng.IntN(50))
				f.Ranges[0].Rows = f.Rows
				next++
				d.Add = append(d.Add, f)
			}
			d.Partitions = []partitionState{{Partition: 0, Next: next}}
		case k < 8: // a merge's commit: live files out
			for _, p := range liveNow[:min(len(liveNow), 1+rng.IntN(3))] {
				d.Remove = append(d.Remove, p)
			}
		default: // the grace period over: replaced files purged
			for i := 0; i < len(mm.replaced) && i < 3; i++ {
				d.Purge = append(d.Purge, mm.replaced[i].Path)
			}
			if len(d.Purge) == 0 {
				d.Remove = append(d.Remove, liveNow[0])
			}
		}
		// Live paths this delta leaves live, and replaced ones it does
		// not purge: what a rule-breaking delta may name.
		var stillLive, stillReplaced []string
		for _, p := range liveNow {
			if !slices.Contains(d.Remove, p) {
				stillLive = append(stillLive, p)
			}
		}
		for _, r := range mm.replaced {
			if !slices.Contains(d.Purge, r.Path) {
				stillReplaced = append(stillReplaced, r.Path)
			}
		}
		bad := rng.IntN(15) == 0
		if bad {
			switch k := rng.IntN(4); {
			case k == 0 && len(stillLive) > 0, k == 1 && len(stillReplaced) > 0:
				taken := ""
				if k == 0 {
					taken = stillLive[rng.IntN(len(stillLive))]
				} else {
					taken = stillReplaced[rng.IntN(len(stillReplaced))]
				}
				f := testFile(t0.UnixMicro(), 0, next, next)
				f.Path = taken
				d.Add = append(d.Add, f)
				d.Partitions = []partitionState{{Partition: 0, Next: next + 1}}
			case k == 2:
				d.Remove = append(d.Remove, "dt=2026-01-01/hour=00/never.parquet")
			case k == 3 && len(liveNow) > 0:
				d.Purge = append(d.Purge, liveNow[0]) // live (or removed by this delta), not replaced
			default:
				bad = false
			}
		}
		got, err := apply(m, d)
		if bad {
			if !errors.Is(err, errConflict) {
				t.Fatalf("version %d: a delta breaking a rule (%+v) was not refused: %v", v, d, err)
			}
			refused++
			if fs, want := m.Files(), mm.files(); !slices.EqualFunc(fs, want, sameFile) {
				t.Fatalf("version %d: a refused delta changed the manifest", v)
			}
			v-- // the version is made again by the next delta
			continue
		}
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		// The model takes the same delta.
		for _, p := range d.Remove {
			delete(mm.live, p)
			mm.replaced = append(mm.replaced, replacedEntry{Path: p, Version: v, At: v})
		}
		mm.replaced = slices.DeleteFunc(mm.replaced, func(r replacedEntry) bool { return slices.Contains(d.Purge, r.Path) })
		for _, f := range d.Add {
			f.Added = v
			mm.live[f.Path] = f
		}
		if fs, want := got.Files(), mm.files(); !slices.EqualFunc(fs, want, sameFile) {
			t.Fatalf("version %d: %d files, the model %d (first: %+v / %+v)", v, len(fs), len(want), first(fs), first(want))
		}
		var rows int64
		for _, f := range mm.live {
			rows += f.Rows
		}
		if got.rowsHeld() != rows {
			t.Fatalf("version %d: %d rows held, the model's files hold %d", v, got.rowsHeld(), rows)
		}
		if !slices.Equal(got.Replaced, mm.replaced) {
			t.Fatalf("version %d: replaced %v, the model %v", v, got.Replaced, mm.replaced)
		}
		crowded, periods := mm.crowded()
		if c := slices.Collect(got.crowdedStarts()); !slices.Equal(c, crowded) {
			t.Fatalf("version %d: crowded periods %v, the model %v", v, c, crowded)
		}
		if got.periodsHeld() != periods {
			t.Fatalf("version %d: %d periods held, the model's files are in %d", v, got.periodsHeld(), periods)
		}
		for p := range mm.live {
			if !got.isLive(p) {
				t.Fatalf("version %d: %s is live in the model, not in the manifest", v, p)
			}
		}
		for _, r := range mm.replaced {
			if got.isLive(r.Path) {
				t.Fatalf("version %d: replaced %s is live", v, r.Path)
			}
		}
		if v%25 == 0 {
			if err := got.check(); err != nil {
				t.Fatalf("version %d: %v", v, err)
			}
			b, _ := json.Marshal(got)
			var read manifest
			if err := json.Unmarshal(b, &read); err != nil {
				t.Fatalf("version %d: its checkpoint: %v", v, err)
			}
			if c := slices.Collect(read.crowdedStarts()); !slices.Equal(c, crowded) || read.periodsHeld() != periods {
				t.Fatalf("version %d read from its checkpoint: crowded periods %v and %d periods, the model %v and %d", v, c, read.periodsHeld(), crowded, periods)
			}
			versions = append(versions, seen{got, string(b), crowded})
		}
		m = got
	}
	// FilesIn, from the tree, against the model's files.
	all := mm.files()
	for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {t0.UnixMicro() + 30*hourMicros, t0.UnixMicro() + 31*hourMicros},
		{t0.UnixMicro() + 100*hourMicros + 1, t0.UnixMicro() + 180*hourMicros - 1}, {0, t0.UnixMicro()}} {
		var want []fileEntry
		for _, f := range all {
			if f.Start < r[1] && f.End > r[0] {
				want = append(want, f)
			}
		}
		if got := m.FilesIn(r[0], r[1]); !slices.EqualFunc(got, want, sameFile) || (r[0] == math.MinInt64 && len(got) != len(all)) {
			t.Errorf("FilesIn(%d, %d): %d files, the model %d", r[0], r[1], len(got), len(want))
		}
	}
	if refused < 100 {
		t.Fatalf("only %d refused deltas: the test does not try the rules", refused)
	}
	for _, s := range versions {
		if b, _ := json.Marshal(s.m); string(b) != s.json {
			t.Fatalf("version %d changed after later commits", s.m.Version)
		}
		if c := slices.Collect(s.m.crowdedStarts()); !slices.Equal(c, s.crowded) {
			t.Fatalf("version %d's crowded periods changed after later commits: %v, then %v", s.m.Version, s.crowded, c)
		}
	}
	t.Logf("2,000 versions, %d deltas refused, %d files live at the end, %d replaced", refused, m.fileCount(), len(m.Replaced))
}

func sameFile(a, b fileEntry) bool {
	return a.Path == b.Path && a.Start == b.Start && a.End == b.End && a.Added == b.Added && slices.Equal(a.Ranges, b.Ranges)
}

func first(fs []fileEntry) any {
	if len(fs) == 0 {
		return nil
	}
	return fs[0]
}

// TestApplyConcurrently: versions built at once on one manifest (a
// commit, a refresh, readers of older versions) each hold exactly their
// own change, and the base stays as it was. Run with -race, this is also
// the check that cloning shared trees does not race.
func TestApplyConcurrently(t *testing.T) {
	base := &manifest{Format: manifestFormat, Topic: "t"}
	var adds []fileEntry
	for i := range 1000 {
		adds = append(adds, testFile(t0.UnixMicro()+int64(i)*hourMicros, 0, int64(i), int64(i)))
	}
	base, err := apply(base, &delta{Version: 1, Add: adds, Partitions: []partitionState{{Partition: 0, Next: 2000}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	out := make([]*manifest, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			f := testFile(t0.UnixMicro()+int64(i)*hourMicros, 0, 1000+int64(i), 1000+int64(i))
			out[i], errs[i] = apply(base, &delta{Version: 2, Add: []fileEntry{f}, Remove: []string{adds[500+i].Path}})
		})
		wg.Go(func() {
			for range 20 {
				if c := len(base.Files()); c != 1000 {
					t.Errorf("the base holds %d files while versions are built on it", c)
				}
			}
		})
	}
	wg.Wait()
	for i, m := range out {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if m.fileCount() != 1000 || m.isLive(adds[500+i].Path) || len(m.Replaced) != 1 {
			t.Errorf("version %d: %d files, removed file live %v, %d replaced", i, m.fileCount(), m.isLive(adds[500+i].Path), len(m.Replaced))
		}
		for j := range n {
			if added := m.isLive(fmt.Sprintf("%s/p0-%d-%d.parquet", periodPath(t0.UnixMicro()+int64(j)*hourMicros, hourMicros), 1000+j, 1000+j)); added != (i == j) {
				t.Errorf("version %d holds the file of version %d: %v", i, j, added)
			}
		}
	}
	if base.fileCount() != 1000 || len(base.Replaced) != 0 {
		t.Errorf("the base changed: %d files, %d replaced", base.fileCount(), len(base.Replaced))
	}
}

// TestCheckpointFilesRefused: a checkpoint listing a path twice (live
// twice, or live and replaced) or its files out of order is refused
// naming what is wrong; one listing them in order reads back to the same
// bytes.
func TestCheckpointFilesRefused(t *testing.T) {
	a := testFile(t0.UnixMicro(), 0, 0, 9)
	b := testFile(t0.UnixMicro()+hourMicros, 0, 10, 19)
	ckpt := func(files []fileEntry, replaced []replacedEntry) []byte {
		var fs []*fileEntry
		for i := range files {
			fs = append(fs, &files[i])
		}
		bs, err := json.Marshal(manifestJSON{Format: manifestFormat, Topic: "t", Version: 3,
			Partitions: []partitionState{{Partition: 0, Next: 20}}, Files: fs, Replaced: replaced})
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"twice":              {ckpt([]fileEntry{a, a}, nil), "files out of order"},
		"live and replaced":  {ckpt([]fileEntry{a, b}, []replacedEntry{{Path: b.Path, Version: 2}}), "listed twice"},
		"replaced twice":     {ckpt([]fileEntry{a}, []replacedEntry{{Path: "x", Version: 2}, {Path: "x", Version: 3}}), "x listed twice"},
		"out of order":       {ckpt([]fileEntry{b, a}, nil), "files out of order"},
		"same period, twice": {ckpt([]fileEntry{a, {Path: a.Path, Start: a.Start + 1, End: a.End, Ranges: b.Ranges, Rows: 1}}, nil), a.Path + " listed twice"},
	} {
		var m manifest
		if err := json.Unmarshal(c.b, &m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	good := ckpt([]fileEntry{a, b}, []replacedEntry{{Path: "dt=2026-01-01/hour=00/old.parquet", Version: 2, At: 7}})
	var m manifest
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(&m); string(again) != string(good) {
		t.Errorf("read back as\n%s\nnot\n%s", again, good)
	}
	if m.fileCount() != 2 || !m.isLive(a.Path) || m.isLive("dt=2026-01-01/hour=00/old.parquet") {
		t.Errorf("read: %d files", m.fileCount())
	}
}

// BenchmarkManifestCommit commits one flush's file to the manifest of a
// lake of 1,000 files and to one of 100,000 (a local directory each), the
// two alternated, through the whole commit path: the log read again, the
// record written create-only and confirmed, and a checkpoint of the whole
// manifest every checkpointEvery commits. It reports each one's wall clock
// per commit and their ratio (1.0: a commit costs the same whatever the
// lake holds).
func BenchmarkManifestCommit(b *testing.B) {
	ctx := context.Background()
	h := t0.UnixMicro()
	open := func(n int) *manifestStore {
		ms := openMS(b, openStore(b, testPipeline(b.TempDir(), nil, nil)))
		adds := make([]fileEntry, n)
		for i := range adds {
			adds[i] = testFile(h+int64(i)*hourMicros, 0, int64(i), int64(i))
		}
		if _, err := ms.commit(ctx, func(*manifest) (*delta, error) {
			return &delta{Add: adds, Partitions: []partitionState{{Partition: 0, Next: int64(n)}}}, nil
		}); err != nil {
			b.Fatal(err)
		}
		return ms
	}
	lakes := [2]*manifestStore{open(1000), open(100_000)}
	i := 0
	alternateLakes(b, "commit", func(k int) {
		if _, err := lakes[k].commit(ctx, addFile(h+int64(200_000+i/2)*hourMicros, 0, 1)); err != nil {
			b.Fatal(err)
		}
		i++
	})
}

// alternateLakes runs op(0), on a lake of 1,000 files, and op(1), on one
// of 100,000, alternately until the benchmark ends, and reports each
// one's wall clock per op (µs/<what>-1k-files, µs/<what>-100k-files) and
// their ratio (100k/1k).
func alternateLakes(b *testing.B, what string, op func(k int)) {
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k := range took {
			start := time.Now()
			op(k)
			took[k] += time.Since(start)
		}
		n++
	}
	b.ReportMetric(float64(took[0].Microseconds())/float64(n), "µs/"+what+"-1k-files")
	b.ReportMetric(float64(took[1].Microseconds())/float64(n), "µs/"+what+"-100k-files")
	b.ReportMetric(float64(took[1])/float64(took[0]), "100k/1k")
}

// TestManifestJSONAsEncodingJSON: the checkpoint bytes MarshalJSON
// appends by hand are exactly encoding/json's for the same manifest:
// paths with quotes, backslashes, HTML characters, control characters,
// non-ASCII and invalid UTF-8, files without ranges, negative times,
// compacted or not, with replaced files and without, and no files.
func TestManifestJSONAsEncodingJSON(t *testing.T) {
	type plain struct {
		Format     int              `json:"format"`
		Topic      string           `json:"topic"`
		Version    int64            `json:"version"`
		Partitions []partitionState `json:"partitions"`
		Files      []fileEntry      `json:"files"`
		Replaced   []replacedEntry  `json:"replaced,omitempty"`
	}
	rng := rand.New(rand.NewPCG(3, 4))
	paths := []string{"dt=2026-01-01/hour=00/w0-1-2-e3.parquet", `a"b`, `a\b`, "a<b>&c", "tab\there", "é/ü", "\xff\xfe", "\u2028", "\x7f", ""}
	for round := range 200 {
		m := &manifest{Format: manifestFormat, Topic: "t<&>\"" + strconv.Itoa(round), Version: int64(round)}
		if round%3 > 0 {
			m.Partitions = []partitionState{{Partition: 1, Next: rng.Int64(), Epoch: rng.Uint64()}}
		}
		var fs []*fileEntry
		for i := range rng.IntN(6) * (round % 2) {
			f := &fileEntry{Path: paths[rng.IntN(len(paths))] + strconv.Itoa(i), Start: rng.Int64() - rng.Int64(), End: rng.Int64(),
				Rows: rng.Int64(), Bytes: -rng.Int64(), CRC32C: rng.Uint32(), MinTime: -1, MaxTime: rng.Int64(), Added: int64(i), Compacted: rng.IntN(2) == 0}
			for range rng.IntN(3) {
				f.Ranges = append(f.Ranges, offsetRange{Partition: rng.IntN(1024), First: rng.Int64(), Last: rng.Int64(), Rows: rng.Int64()})
			}
			fs = append(fs, f)
		}
		if round%4 == 1 {
			m.Replaced = []replacedEntry{{Path: paths[rng.IntN(len(paths))], Version: 3, At: -4}}
		}
		if err := m.setFiles(fs); err != nil {
			t.Fatal(err)
		}
		got, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var files []fileEntry // null when none, as before
		if m.fileCount() > 0 {
			files = m.Files()
		}
		want, err := json.Marshal(plain{m.Format, m.Topic, m.Version, m.Partitions, files, m.Replaced})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("round %d:\n%s\nencoding/json:\n%s", round, got, want)
		}
	}
}
