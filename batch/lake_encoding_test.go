package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// encodingSchema has a column of each kind whose encoding the writer
// chooses per file.
var encodingSchema = event.Schema{
	{Name: "ts", Type: event.TypeTimestamp, Required: true},
	{Name: "host", Type: event.TypeString, Required: true},
	{Name: "note", Type: event.TypeString},
	{Name: "code", Type: event.TypeInt, Required: true},
	{Name: "level", Type: event.TypeLong},
	{Name: "ratio", Type: event.TypeDouble},
	{Name: "ok", Type: event.TypeBool},
}

// encodingEvents makes n events of encodingSchema in time order. few: few
// distinct values per column and 20 log entries whose events (sharing an
// ingest time) interleave; else most values distinct and every event its own ingest time (one
// event per log entry: what would make a dictionary of ingest times as
// large as the column).
func encodingEvents(n int, start int64, few bool) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		tm := start + int64(i)*1_000_003
		v := make([]event.Value, len(encodingSchema))
		v[0] = event.Value{I: tm, Valid: true}
		ingest := tm + 7 + int64(i%13)*1009
		if few {
			v[1] = event.Value{S: fmt.Sprintf("host-%d", i*7%9), Valid: true}
			v[3] = event.Value{I: int64(200 + 100*(i*31%5)), Valid: true}
			v[4] = event.Value{I: int64(i*7919%6) * 1_000_000_007, Valid: i%10 != 0}
			v[5] = event.Value{F: []float64{0.25, 1.5, 3.75, math.Inf(1)}[(i*2654435761>>11)%4], Valid: i%7 != 0}
			// In time order the entries interleave: the events of one
			// entry are spread over the file.
			ingest = start + int64(i*7%20)*100_000_000 + 20_000
		} else {
			v[1] = event.Value{S: fmt.Sprintf("host-%07d", i*7919%1_000_003), Valid: true}
			v[3] = event.Value{I: int64(int32(i * 2654435761)), Valid: true}
			v[4] = event.Value{I: int64(i) * int64(i) * 7, Valid: i%10 != 0}
			v[5] = event.Value{F: float64(i*7919%10007) / 7, Valid: i%7 != 0}
		}
		if i%3 != 0 {
			v[2] = event.Value{S: fmt.Sprintf("note %d of a few words", i*13), Valid: true}
		}
		v[6] = event.Value{I: int64(i % 3 % 2), Valid: i%5 != 0}
		evs[i] = event.Event{ID: fmt.Sprintf("e-%08d", i*7919%1_000_003), Time: tm, Ingest: ingest, Values: v}
	}
	return evs
}

// TestLakeEncodingChoice writes files whose rows suit different encodings,
// checks the encoding each column got and that the footer has no page
// index, and reads every file back exactly with the batch layer's reader,
// Apache Arrow's Go reader, pyarrow and DuckDB.
func TestLakeEncodingChoice(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	const rows = 2000
	for _, c := range []struct {
		name string
		few  bool
		want map[string]format.Encoding // the column's data page encoding
	}{
		{"few values, events of 20 log entries", true, map[string]format.Encoding{
			"ts": format.DeltaBinaryPacked, "host": format.RLEDictionary, "note": format.Plain,
			"code": format.RLEDictionary, "level": format.RLEDictionary, "ratio": format.RLEDictionary,
			event.ColID: format.Plain, event.ColPartition: format.RLEDictionary, event.ColOffset: format.DeltaBinaryPacked,
			event.ColEventTime: format.DeltaBinaryPacked, event.ColIngestTime: format.RLEDictionary}},
		{"values mostly distinct, every event its own ingest time", false, map[string]format.Encoding{
			"ts": format.DeltaBinaryPacked, "host": format.Plain, "note": format.Plain,
			"code": format.DeltaBinaryPacked, "level": format.DeltaBinaryPacked, "ratio": format.ByteStreamSplit,
			event.ColID: format.Plain, event.ColPartition: format.RLEDictionary, event.ColOffset: format.DeltaBinaryPacked,
			event.ColEventTime: format.DeltaBinaryPacked, event.ColIngestTime: format.DeltaBinaryPacked}},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs := encodingEvents(rows, hour, c.few)
			offs := make([]int64, rows)
			for i := range offs {
				offs[i] = 500 + int64(i)
			}
			path := fmt.Sprintf("dt=2026-01-01/hour=00/few-%t.parquet", c.few)
			fe := writeTestFile(t, tl, path, hour, 2, 500, 500+rows-1, evs, offs)
			file := filepath.Join(dir, filepath.FromSlash(tl.key(path)))
			checkEncodings(t, file, c.want)
			readBack(t, tl, fe, evs, offs)
			checkPyarrowDuckDB(t, file, evs, offs)
		})
	}
}

// TestLakeDeltaByteArray writes the same kind of rows into a file of
// bestFileRows rows or more and into a daily-sized one: numbered ids and a
// numbered string field in row order (each value shares all but its last
// characters with the one before), and a field of random hex strings drawn
// from a pool (nothing shared with the value before, too many distinct
// values for a dictionary). In the large file the numbered columns are
// DELTA_BYTE_ARRAY and the random one PLAIN; in the smaller file all are
// PLAIN (zstd's best level finds the shared prefixes itself). Both files
// read back exactly with the batch layer's readers, pyarrow and DuckDB.
func TestLakeDeltaByteArray(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	day := periodOf(1_767_225_600_000_000, dayMicros)
	rnd := rand.New(rand.NewPCG(7, 8))
	pool := make([]string, 12_000)
	for i := range pool {
		pool[i] = strconv.FormatUint(rnd.Uint64(), 16)
	}
	for k, c := range []struct {
		rows int
		want map[string]format.Encoding
	}{
		{bestFileRows + 4000, map[string]format.Encoding{
			event.ColID: format.DeltaByteArray, "note": format.DeltaByteArray, "host": format.Plain}},
		{2000, map[string]format.Encoding{
			event.ColID: format.Plain, "note": format.Plain, "host": format.Plain}},
	} {
		t.Run(strconv.Itoa(c.rows), func(t *testing.T) {
			start := day + int64(k)*dayMicros
			evs := encodingEvents(c.rows, start, false)
			offs := make([]int64, c.rows)
			for i := range evs {
				evs[i].ID = fmt.Sprintf("order-%09d", 1_000_000+i)
				evs[i].Values[1].S = pool[rnd.IntN(len(pool))]
				if evs[i].Values[2].Valid {
					evs[i].Values[2].S = fmt.Sprintf("https://shop.example/items/%08d", 500_000+i)
				}
				offs[i] = int64(i)
			}
			path := fmt.Sprintf("%s/numbered.parquet", periodPath(start, dayMicros))
			daily := &topicLake{topic: tl.topic, st: tl.st, ls: tl.ls, layout: layout{size: dayMicros}}
			fe := writeTestFile(t, daily, path, start, 2, 0, int64(c.rows-1), evs, offs)
			file := filepath.Join(dir, filepath.FromSlash(daily.key(path)))
			checkEncodings(t, file, c.want)
			readBack(t, daily, fe, evs, offs)
			checkPyarrowDuckDB(t, file, evs, offs)
		})
	}
}

// TestLakeFilesNameTheirColumns writes several files with one file
// writer, as the lake writer does, and checks that every file's column
// chunks name their column (path_in_schema, which the Parquet format
// requires and parquet-mr based readers such as Spark and Trino look
// columns up by) and list their encodings. parquet-go writers before
// v0.32.1 cleared both in every file after the first.
func TestLakeFilesNameTheirColumns(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	fw := newFileWriter(tl.ls, nil)
	want := map[string]format.Encoding{
		"ts": format.DeltaBinaryPacked, "host": format.RLEDictionary, "note": format.Plain,
		event.ColID: format.Plain, event.ColOffset: format.DeltaBinaryPacked, event.ColEventTime: format.DeltaBinaryPacked,
	}
	for k := range 3 {
		const rows = 900
		evs := encodingEvents(rows, hour+int64(k)*hourMicros, true)
		offs := make([]int64, rows)
		for i := range offs {
			offs[i] = int64(k*rows + i)
		}
		path := fmt.Sprintf("dt=2026-01-01/hour=%02d/w.parquet", k)
		fe := writeTestFileWith(t, tl, fw, path, hour+int64(k)*hourMicros, 2, offs[0], offs[rows-1], evs, offs)
		checkEncodings(t, filepath.Join(dir, filepath.FromSlash(tl.key(path))), want)
		readBack(t, tl, fe, evs, offs)
	}
}

// checkEncodings checks each column's data page encoding and that no
// column has a page index.
func checkEncodings(t *testing.T, file string, want map[string]format.Encoding) {
	t.Helper()
	pf := openParquet(t, file)
	md := pf.Metadata()
	for _, e := range md.Schema {
		if e.TypeLength.Valid && e.Type.V != format.FixedLenByteArray {
			t.Errorf("schema element %s (%s) has a type length (%d)", e.Name, e.Type.V, e.TypeLength.V)
		}
	}
	for i, leaf := range pf.Schema().Columns() {
		name := leaf[0]
		c := md.RowGroups[0].Columns[i]
		if !slices.Equal(c.MetaData.PathInSchema, leaf) {
			t.Errorf("column %d (%s): path_in_schema %q, want %q", i, name, c.MetaData.PathInSchema, leaf)
		}
		if c.ColumnIndexLength != 0 || c.OffsetIndexLength != 0 {
			t.Errorf("%s: a page index (%d and %d bytes)", name, c.ColumnIndexLength, c.OffsetIndexLength)
		}
		w, ok := want[name]
		if !ok {
			continue
		}
		encs := c.MetaData.Encoding
		if !slices.Contains(encs, w) || w != format.RLEDictionary && slices.Contains(encs, format.RLEDictionary) {
			t.Errorf("%s: encodings %v, want data pages %v", name, encs, w)
		}
	}
}

// openParquet opens a lake file with parquet-go.
func openParquet(t *testing.T, path string) *parquet.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pf
}

// readBack reads the file of fe with the batch layer's reader and Apache
// Arrow's and compares every value.
func readBack(t *testing.T, tl *topicLake, fe fileEntry, evs []event.Event, offs []int64) {
	t.Helper()
	readers := map[string]func(context.Context, lakestore.Object, string, event.Schema, fileEntry, scanOptions, func(*scanBatch) error) error{
		"parquet-go": scanParquet, "arrow": scanParquetArrow,
	}
	for name, scan := range readers {
		o, _, err := tl.openFile(context.Background(), fe)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		err = scan(context.Background(), o, fe.Path, encodingSchema, fe, scanOptions{IDs: true, Ingest: true, Positions: true}, func(b *scanBatch) error {
			for j, e := range b.Events {
				w := evs[i]
				if e.ID != w.ID || e.Time != w.Time || e.Ingest != w.Ingest || b.Offsets[j] != offs[i] || b.Parts[j] != 2 {
					return fmt.Errorf("row %d: %s %d %d p%d@%d, want %s %d %d p2@%d", i, e.ID, e.Time, e.Ingest, b.Parts[j], b.Offsets[j], w.ID, w.Time, w.Ingest, offs[i])
				}
				for k, v := range e.Values {
					if !sameValue(v, w.Values[k]) {
						return fmt.Errorf("row %d field %s = %+v, want %+v", i, encodingSchema[k].Name, v, w.Values[k])
					}
				}
				i++
			}
			return nil
		})
		o.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if i != len(evs) {
			t.Fatalf("%s: read %d rows, want %d", name, i, len(evs))
		}
	}
}

func sameValue(a, b event.Value) bool {
	if !a.Valid || !b.Valid {
		return a.Valid == b.Valid
	}
	return a == b || math.IsNaN(a.F) && math.IsNaN(b.F)
}

// pyRows prints a lake file's rows as pyarrow and as DuckDB read them,
// as JSON lists in file order, timestamps in microseconds and doubles as
// their repr (infinities included); then the rows DuckDB counts where each
// column IS NULL (a query it answers from the chunks' null counts where
// they say 0).
const pyRows = `
import sys, json, pyarrow as pa, pyarrow.parquet as pq, duckdb
cols = ["ts", "host", "note", "code", "level", "ratio", "ok", "_id", "_partition", "_offset", "_event_time", "_ingest_time"]
t = pq.read_table(sys.argv[1])
def norm(v):
    return repr(v) if isinstance(v, float) else v
data = []
for c in cols:
    a = t.column(c)
    if pa.types.is_timestamp(a.type):
        a = a.cast(pa.int64())
    data.append([norm(v) for v in a.to_pylist()])
print(json.dumps([list(r) for r in zip(*data)]))
con = duckdb.connect()
q = "select " + ", ".join("epoch_us(%s)" % c if c in ("ts", "_event_time", "_ingest_time") else c for c in cols) + " from read_parquet(?)"
print(json.dumps([[norm(v) for v in r] for r in con.execute(q, [sys.argv[1]]).fetchall()]))
print(json.dumps([con.execute("select count(*) from read_parquet(?) where %s is null" % c, [sys.argv[1]]).fetchone()[0] for c in cols]))
`

// checkPyarrowDuckDB compares every value of a lake file as pyarrow and
// DuckDB read it with the events written (skipped without python3,
// pyarrow and duckdb, unless LF_REQUIRE_SERVICES=1).
func checkPyarrowDuckDB(t *testing.T, file string, evs []event.Event, offs []int64) {
	t.Helper()
	out, ok := runPython(t, "pyarrow and DuckDB", "pyarrow, duckdb", pyRows, file)
	if !ok {
		return
	}
	want := make([][]any, len(evs))
	for i, e := range evs {
		want[i] = wantRecord(encodingSchema, e, 2, offs[i], func(f float64) any { return pyFloat(f) })
	}
	wantJSON, _ := json.Marshal(want)
	dec := json.NewDecoder(out)
	dec.UseNumber()
	for _, reader := range []string{"pyarrow", "DuckDB"} {
		var got [][]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v", reader, err)
		}
		gotJSON, _ := json.Marshal(got)
		if !bytes.Equal(gotJSON, wantJSON) {
			for i := range min(len(got), len(want)) {
				g, _ := json.Marshal(got[i])
				w, _ := json.Marshal(want[i])
				if !bytes.Equal(g, w) {
					t.Fatalf("%s: row %d: %s, want %s", reader, i, g, w)
				}
			}
			t.Fatalf("%s: %d rows, want %d", reader, len(got), len(want))
		}
	}
	var nulls []int
	if err := dec.Decode(&nulls); err != nil {
		t.Fatalf("DuckDB's IS NULL counts: %v", err)
	}
	for k := range want[0] {
		n := 0
		for _, r := range want {
			if r[k] == nil {
				n++
			}
		}
		if nulls[k] != n {
			t.Errorf("DuckDB: column %d IS NULL in %d rows, want %d", k, nulls[k], n)
		}
	}
}

// pyFloat is a double as Python's repr writes it.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		s += ".0"
	}
	return s
}

// TestSmallFileWideValues: a small file (under smallFileRows rows), which
// is written with a page buffer smaller than its column chunks of wide
// values, still has one page a chunk, as files of smallFileRows rows or
// more (written with the large page buffer) do: its rows reach parquet-go
// in one call a column. Every file reads back exactly with the batch
// layer's reader, Apache Arrow's Go reader, pyarrow and DuckDB.
func TestSmallFileWideValues(t *testing.T) {
	if smallFileRows > chunkRows {
		t.Fatalf("small files of up to %d rows reach parquet-go in calls of %d rows", smallFileRows-1, chunkRows)
	}
	tl, dir := testDirLake(t, encodingSchema)
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	fw := newFileWriter(tl.ls, nil)
	for _, c := range []struct{ rows, width int }{
		{rows: smallFileRows - 1, width: 700},
		{rows: smallFileRows, width: 700},
		{rows: 200, width: 0},
	} {
		if c.width*c.rows > 0 && c.width*c.rows < 2*smallPageBuffer {
			t.Fatalf("%d rows of %d bytes fit a small page buffer", c.rows, c.width)
		}
		evs := encodingEvents(c.rows, hour, false)
		for i := range evs {
			if c.width > 0 {
				evs[i].Values[2] = event.Value{S: fmt.Sprintf("%0*d", c.width, i*7919), Valid: true}
			}
		}
		offs := make([]int64, c.rows)
		for i := range offs {
			offs[i] = int64(i)
		}
		path := fmt.Sprintf("dt=2026-01-01/hour=00/w-%d-%d.parquet", c.rows, c.width)
		fe := writeTestFileWith(t, tl, fw, path, hour, 2, 0, int64(c.rows-1), evs, offs)
		file := filepath.Join(dir, filepath.FromSlash(tl.key(path)))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := dataPages(t, b, 2); got != 1 {
			t.Errorf("%d rows of %d-byte notes: %d data pages, want 1", c.rows, c.width, got)
		}
		readBack(t, tl, fe, evs, offs)
		checkPyarrowDuckDB(t, file, evs, offs)
	}
}

// dataPages counts the data pages of column col in the Parquet file b.
func dataPages(t *testing.T, b []byte, col int) int {
	t.Helper()
	m, err := readFooter(b)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range m.groups {
		c := g.chunks[col]
		at := c.dataPage
		if c.dictPage > 0 && c.dictPage < at {
			at = c.dictPage
		}
		for end := at + c.size; at < end; {
			h, hn, err := readPageHeader(b[at:])
			if err != nil {
				t.Fatal(err)
			}
			if h.typ == pageData || h.typ == pageDataV2 {
				n++
			}
			at += int64(hn) + int64(h.compressed)
		}
	}
	return n
}
