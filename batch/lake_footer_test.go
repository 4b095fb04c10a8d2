package batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// footerView is a fileMeta in plain values, for comparing two decodings.
type footerView struct {
	Rows    int64
	Columns []string // name (empty inside a group) and maximum definition level
	Groups  []groupView
}

type groupView struct {
	Rows   int64
	Chunks []string
}

func viewOf(m *fileMeta) footerView {
	v := footerView{Rows: m.rows}
	for _, c := range m.columns {
		v.Columns = append(v.Columns, fmt.Sprintf("%q def %d", c.name, c.maxDef))
	}
	for _, g := range m.groups {
		gv := groupView{Rows: g.rows}
		for _, c := range g.chunks {
			gv.Chunks = append(gv.Chunks, fmt.Sprintf("type %d codec %d encodings %v external %t data %d dict %d size %d min %x (%t) max %x (%t)",
				c.typ, c.codec, c.encodings, c.external, c.dataPage, c.dictPage, c.size, c.min, c.min != nil, c.max, c.max != nil))
		}
		v.Groups = append(v.Groups, gv)
	}
	return v
}

// parquetGoFooter decodes the footer of file b with parquet-go.
func parquetGoFooter(b []byte) (*fileMeta, error) {
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, err
	}
	return fileMetaOf(pf)
}

// footerAgrees checks readFooter against parquet-go on the file b: when
// both decode it they agree in every field a scan uses. It reports whether
// readFooter decoded it.
func footerAgrees(t *testing.T, name string, b []byte) bool {
	t.Helper()
	lean, err := readFooter(b)
	if err != nil {
		return false
	}
	full, err := parquetGoFooter(b)
	if err != nil {
		return true // readFooter takes more than parquet-go: the pages decide
	}
	if got, want := viewOf(lean), viewOf(full); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: readFooter\n%+v\nparquet-go\n%+v", name, got, want)
	}
	return true
}

// footerFiles are Parquet files of several writers and shapes, by name.
func footerFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	// The lake's writer: every encoding it chooses, nullable columns,
	// statistics on some columns only.
	for _, n := range []int{1, 300, 2000, bestFileRows + 100} {
		tl, dir := testDirLake(t, pageSchema)
		fe := writePageFile(t, tl, hour, pageEvents(n, hour))
		b, err := os.ReadFile(filepath.Join(dir, tl.key(fe.Path)))
		if err != nil {
			t.Fatal(err)
		}
		files[fmt.Sprintf("lake file of %d rows", n)] = b
	}
	// parquet-go's own writer: several row groups, a repeated column, a
	// group (nested), page statistics and a page index.
	type flat struct {
		A int64   `parquet:"a"`
		B *string `parquet:"b,dict"`
		C float64 `parquet:"c,optional"`
		D []int32 `parquet:"d"`
	}
	type nested struct {
		A int64 `parquet:"a"`
		G struct {
			X int32  `parquet:"x"`
			Y string `parquet:"y,optional"`
		} `parquet:"g"`
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[flat](&buf, parquet.MaxRowsPerRowGroup(40), parquet.Compression(&parquet.Zstd))
	for i := range 100 {
		s := fmt.Sprint("s", i%7)
		r := flat{A: int64(i) * 3, C: float64(i) / 2, D: []int32{int32(i), -int32(i)}}
		if i%3 != 0 {
			r.B = &s
		}
		if _, err := w.Write([]flat{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files["parquet-go, 3 row groups, a repeated column"] = slices.Clone(buf.Bytes())
	buf.Reset()
	wn := parquet.NewGenericWriter[nested](&buf)
	if _, err := wn.Write([]nested{{A: 1}, {A: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := wn.Close(); err != nil {
		t.Fatal(err)
	}
	files["parquet-go, a nested column"] = slices.Clone(buf.Bytes())
	return files
}

// TestReadFooter: the lake's footer reader decodes the footers of the
// lake's writer, of parquet-go's and (when python3 has them) of pyarrow's
// and DuckDB's exactly as parquet-go does; a nested schema is left to
// parquet-go. A lake file is scanned without parquet-go opening it.
func TestReadFooter(t *testing.T) {
	files := footerFiles(t)
	dir := t.TempDir()
	script := `
import sys, pyarrow as pa, pyarrow.parquet as pq, duckdb
d = sys.argv[1]
t = pa.table({"a": pa.array(range(5000), pa.int64()), "s": pa.array([None if i % 5 == 0 else "v%d" % (i % 13) for i in range(5000)]),
              "x": pa.array([i / 4 for i in range(5000)])})
pq.write_table(t, d + "/pyarrow.parquet", row_group_size=2000, compression="zstd", write_page_index=True, write_statistics=True)
pq.write_table(t, d + "/pyarrow-plain.parquet", use_dictionary=False, compression="none", column_encoding={"a": "DELTA_BINARY_PACKED"})
pq.write_table(pa.table({"a": [1, 2], "n": [{"x": 1, "y": "p"}, {"x": 2, "y": None}]}), d + "/pyarrow-nested.parquet")
duckdb.connect().execute("COPY (SELECT range AS a, 'k' || (range % 9) AS s, CASE WHEN range % 4 = 0 THEN NULL ELSE range * 1.5 END AS x FROM range(3000)) TO '" + d + "/duckdb.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000)")
`
	if _, ok := runPython(t, "the other writers' files", "pyarrow, duckdb", script, dir); ok {
		for _, name := range []string{"pyarrow", "pyarrow-plain", "pyarrow-nested", "duckdb"} {
			b, err := os.ReadFile(filepath.Join(dir, name+".parquet"))
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		}
	}
	for name, b := range files {
		lean := footerAgrees(t, name, b)
		nested := name == "parquet-go, a nested column" || name == "pyarrow-nested"
		if lean == nested {
			_, err := readFooter(b)
			t.Fatalf("%s: readFooter: %v", name, err)
		}
		if nested {
			if _, err := readFooter(b); !errors.Is(err, errNotFlat) {
				t.Fatalf("%s: %v, want errNotFlat", name, err)
			}
		}
	}
	if len(files) < 6 {
		return
	}
	m, err := readFooter(files["pyarrow"])
	if err != nil || len(m.groups) != 3 || m.rows != 5000 || m.groups[2].rows != 1000 {
		t.Fatalf("pyarrow's file: %+v %v", m, err)
	}

	// A lake file is read with the footer reader and the page decoder
	// alone, row groups, statistics and all.
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	tl, _ := testDirLake(t, pageSchema)
	evs := pageEvents(3000, hour)
	fe := writePageFile(t, tl, hour, evs)
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{IDs: true, Ingest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.close()
	var r columnReader
	rows := 0
	for rg := range lf.rowGroups() {
		if err := r.scanRowGroup(context.Background(), lf, rg, func(b *colBatch) error { rows += b.Len; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if rows != len(evs) || lf.pf != nil || r.ownChunks != len(lf.cols)-2 {
		// Partitions and offsets: checked by their statistics, not read.
		t.Fatalf("%d rows of %d, parquet-go opened the file: %t, %d chunks decoded of %d", rows, len(evs), lf.pf != nil, r.ownChunks, len(lf.cols)-2)
	}
}

// TestReadFooterDamaged: a footer with any one byte changed, or cut short,
// is an error or decodes as parquet-go decodes it; readFooter never panics.
func TestReadFooterDamaged(t *testing.T) {
	files := footerFiles(t)
	var lean, damaged int
	for name, b := range files {
		n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
		start := len(b) - 8 - n
		for at := start; at < len(b); at++ {
			for _, x := range []byte{0x00, 0xff, b[at] ^ 0x01, b[at] ^ 0x10, b[at] ^ 0x80} {
				if x == b[at] {
					continue
				}
				d := slices.Clone(b)
				d[at] = x
				damaged++
				if footerAgrees(t, fmt.Sprintf("%s, byte %d of the footer = %#x", name, at-start, x), d) {
					lean++
				}
			}
		}
		for cut := 1; cut < n; cut += 1 + cut/8 {
			// The footer's end cut off, its length and magic kept.
			d := slices.Concat(b[:len(b)-8-cut], b[len(b)-8:])
			binary.LittleEndian.PutUint32(d[len(d)-8:], uint32(n-cut))
			damaged++
			if _, err := readFooter(d); err == nil {
				t.Fatalf("%s: footer cut by %d bytes: read without error", name, cut)
			}
		}
	}
	t.Logf("%d damaged footers, %d decoded by readFooter (and as parquet-go does where it decodes them)", damaged, lean)
}

// FuzzReadFooter: whatever a file's bytes, readFooter returns an error or
// a footer whose every row group has a chunk per column; it never panics.
// (TestReadFooterDamaged compares what it decodes with parquet-go, whose
// decoder can take minutes on what a fuzzer makes.) Seeded with the files
// of TestReadFooter: the input is a footer, which the target puts between
// the magic and the footer's length (the fuzzer is slow on large inputs).
func FuzzReadFooter(f *testing.F) {
	for _, b := range footerFiles(f) {
		n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
		f.Add(b[len(b)-8-n : len(b)-8])
	}
	f.Fuzz(func(t *testing.T, footer []byte) {
		b := binary.LittleEndian.AppendUint32(append([]byte("PAR1"), footer...), uint32(len(footer)))
		m, err := readFooter(append(b, "PAR1"...))
		if err != nil {
			return
		}
		if m.rows < 0 {
			t.Fatalf("%d rows", m.rows)
		}
		for i, g := range m.groups {
			if len(g.chunks) != len(m.columns) || g.rows < 0 {
				t.Fatalf("row group %d: %d rows, %d chunks for %d columns", i, g.rows, len(g.chunks), len(m.columns))
			}
			for _, c := range g.chunks {
				if c.size < 0 || c.dataPage < 0 || c.dictPage < 0 {
					t.Fatalf("row group %d: chunk %+v", i, c)
				}
			}
		}
	})
}
