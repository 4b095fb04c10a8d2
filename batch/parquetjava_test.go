package batch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/internal/parquetjava"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// lakeColumns is what parquet-java must see of a lake file of schema:
// each column's path, Parquet type, logical type and repetition, in
// order.
func lakeColumns(schema event.Schema) []parquetjava.Column {
	var cols []parquetjava.Column
	add := func(name string, typ event.FieldType, required bool) {
		c := parquetjava.Column{Path: name, Repetition: "REQUIRED"}
		if !required {
			c.Repetition = "OPTIONAL"
		}
		switch typ {
		case event.TypeString:
			c.Type, c.Logical = "BINARY", "STRING"
		case event.TypeInt:
			c.Type, c.Logical = "INT32", "INTEGER(32,true)"
		case event.TypeLong:
			c.Type, c.Logical = "INT64", "INTEGER(64,true)"
		case event.TypeDouble:
			c.Type = "DOUBLE"
		case event.TypeBool:
			c.Type = "BOOLEAN"
		case event.TypeTimestamp:
			c.Type, c.Logical = "INT64", "TIMESTAMP(MICROS,true)"
		}
		cols = append(cols, c)
	}
	for _, f := range schema {
		add(f.Name, f.Type, f.Required)
	}
	add(event.ColID, event.TypeString, true)
	add(event.ColPartition, event.TypeInt, true)
	add(event.ColOffset, event.TypeLong, true)
	add(event.ColEventTime, event.TypeTimestamp, true)
	add(event.ColIngestTime, event.TypeTimestamp, true)
	return cols
}

// hasStats reports whether the lake writes the minimum and maximum of
// column c in its chunks' statistics (docs/lake-format.md, "What the
// footer holds"); every chunk has its null count.
func hasStats(c parquetjava.Column) bool {
	switch c.Path {
	case event.ColPartition, event.ColOffset, event.ColEventTime, event.ColIngestTime:
		return true
	}
	return strings.HasPrefix(c.Logical, "TIMESTAMP")
}

// checkJavaFile checks what parquet-java read of a lake file of schema
// against the lake format: every column chunk found by its path, in
// order, with its type, ZSTD, one value per row; as many records as the
// footer says; the ranges key; every chunk's null count, and bounds where
// the format puts them, matching the records (a reader that prunes by
// them would otherwise skip rows).
func checkJavaFile(t *testing.T, f parquetjava.File, schema event.Schema) {
	t.Helper()
	want := lakeColumns(schema)
	if len(f.Columns) != len(want) {
		t.Fatalf("%s: parquet-java found %d column chunks, want %d", f.Path, len(f.Columns), len(want))
	}
	for i, c := range f.Columns {
		w := want[i]
		if c.Path != w.Path || c.Type != w.Type || c.Logical != w.Logical || c.Repetition != w.Repetition {
			t.Errorf("%s: chunk %d is %s %s %s %s, want %s %s %s %s", f.Path, i, c.Path, c.Type, c.Logical, c.Repetition, w.Path, w.Type, w.Logical, w.Repetition)
		}
		if c.Codec != "ZSTD" || c.Values != f.Rows || len(c.Encodings) == 0 {
			t.Errorf("%s: %s: codec %s, %d values, encodings %v; want ZSTD, %d values, the encodings", f.Path, c.Path, c.Codec, c.Values, c.Encodings, f.Rows)
		}
	}
	bounds := parquetjava.CheckStats(t, f)
	for i, c := range f.Columns {
		allNull := c.Stats != nil && c.Stats.Nulls == f.Rows
		if want := hasStats(c) && !allNull; bounds[i] != want {
			t.Errorf("%s: %s: a minimum and maximum: %t, want %t", f.Path, c.Path, bounds[i], want)
		}
	}
	if int64(len(f.Records)) != f.Rows {
		t.Errorf("%s: parquet-java read %d records, the footer says %d", f.Path, len(f.Records), f.Rows)
	}
	for i, r := range f.Records {
		if len(r) != len(want) {
			t.Fatalf("%s: record %d has %d values, want %d", f.Path, i, len(r), len(want))
		}
	}
	if _, ok := f.KV[rangesKey]; !ok {
		t.Errorf("%s: no %s in the footer (keys %v)", f.Path, rangesKey, f.KV)
	}
}

// wantRecord is the record a reader must return for e (of schema) at
// partition part and offset off, as encoding/json decodes its JSON with
// UseNumber: null, a string, true or false, a number, and a double as
// double formats it.
func wantRecord(schema event.Schema, e event.Event, part int, off int64, double func(float64) any) []any {
	num := func(v int64) any { return json.Number(strconv.FormatInt(v, 10)) }
	r := make([]any, 0, len(schema)+5)
	for k, v := range e.Values {
		switch {
		case !v.Valid:
			r = append(r, nil)
		case schema[k].Type == event.TypeString:
			r = append(r, v.S)
		case schema[k].Type == event.TypeDouble:
			r = append(r, double(v.F))
		case schema[k].Type == event.TypeBool:
			r = append(r, v.I != 0)
		default:
			r = append(r, num(v.I))
		}
	}
	return append(r, e.ID, num(int64(part)), num(off), num(e.Time), num(e.Ingest))
}

// javaRecord is wantRecord as parquet-java's records hold it.
func javaRecord(schema event.Schema, e event.Event, part int, off int64) []any {
	return wantRecord(schema, e, part, off, func(f float64) any { return parquetjava.Double(f) })
}

// sameRecords compares records with want, every value, and fails t at the
// first difference. skip lists columns not compared.
func sameRecords(t *testing.T, path string, got, want [][]any, skip ...int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: parquet-java read %d rows, want %d", path, len(got), len(want))
	}
	for i := range want {
		g, w := slices.Clone(got[i]), slices.Clone(want[i])
		for _, k := range skip {
			g[k], w[k] = nil, nil
		}
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Fatalf("%s: parquet-java row %d: %s, want %s", path, i, gj, wj)
		}
	}
}

// checkParquetJavaLake reads every file of the directory lake of one
// topic of testSchema with parquet-java and checks each against the lake
// format, and that the lake holds exactly evs (each id once, every field
// and event time as appended).
func checkParquetJavaLake(t *testing.T, dir string, evs []event.Event) {
	t.Helper()
	files, err := parquetjava.HiveFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	read, ok := parquetjava.Read(t, files...)
	if !ok {
		return
	}
	schema := testSchema()
	byID := make(map[string]event.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	seen := make(map[string]bool, len(evs))
	idCol := len(schema)
	for _, f := range read {
		checkJavaFile(t, f, schema)
		want := make([][]any, len(f.Records))
		for i, r := range f.Records {
			id, _ := r[idCol].(string)
			e, ok := byID[id]
			if !ok || seen[id] {
				t.Fatalf("%s: row %d: id %q was not appended, or is in the lake twice", f.Path, i, id)
			}
			seen[id] = true
			want[i] = javaRecord(schema, e, 0, 0)
		}
		// Partitions, offsets and ingest times are the log's, which evs
		// do not hold.
		sameRecords(t, f.Path, f.Records, want, idCol+1, idCol+2, idCol+4)
	}
	if len(seen) != len(evs) {
		t.Fatalf("parquet-java read %d distinct ids from %d files, want %d", len(seen), len(files), len(evs))
	}
	t.Logf("parquet-java read the %d files of %s: %d rows, as appended", len(files), dir, len(seen))
}

// TestLakeParquetJava writes a lake file of each kind the writer makes,
// all with one file writer (as the lake writer reuses its writers, which
// once left every file but the first without path_in_schema), and reads
// them with parquet-java in one run: every file found column by column
// by path with its types, ZSTD, the ranges key and statistics that match
// its rows, every value as written (odd strings, extreme integers, NaN,
// -0 and infinities too), each chunk's encodings those the footer lists,
// and every encoding the writer chooses among them.
func TestLakeParquetJava(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	daily := &topicLake{topic: tl.topic, st: tl.st, ls: tl.ls, layout: layout{size: dayMicros}}
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	fw := newFileWriter(tl.ls, nil)
	cases := []struct {
		name  string
		tl    *topicLake
		start int64
		rows  int
		few   bool // few distinct values: dictionaries
		odd   bool // odd values (oddValues)
		// minutes: times on whole minutes (minuteEvents), whose delta
		// packing is aligned to whole bytes in a daily-sized file
		minutes bool
		// numbered: ids numbered in row order, which a file of 16,384
		// rows or more stores as DELTA_BYTE_ARRAY
		numbered bool
	}{
		{"hourly, under 256 rows: raw and fastest zstd frames", tl, hour, 120, true, true, false, false},
		{"hourly, few values: dictionaries, zstd's best level", tl, hour + hourMicros, 2000, true, false, false, false},
		{"hourly, distinct values: PLAIN, delta packing, byte stream split", tl, hour + 2*hourMicros, 2000, false, true, false, false},
		{"daily, sparse topic", daily, periodOf(hour, dayMicros), 900, true, true, false, false},
		{"daily, over 16,383 rows: zstd's default level", daily, periodOf(hour, dayMicros) + dayMicros, 20_000, false, false, false, false},
		{"daily, times on whole minutes: byte-aligned delta packing", daily, periodOf(hour, dayMicros) + 2*dayMicros, 450, false, true, true, false},
		{"daily, over 16,383 rows, numbered ids: DELTA_BYTE_ARRAY", daily, periodOf(hour, dayMicros) + 3*dayMicros, 20_000, false, true, false, true},
	}
	var files []string
	var want [][][]any
	for k, c := range cases {
		evs := encodingEvents(c.rows, c.start, c.few)
		if c.minutes {
			evs = minuteEvents(c.rows, c.start)
		}
		if c.odd {
			oddValues(evs)
		}
		if c.numbered {
			for i := range evs {
				evs[i].ID = fmt.Sprintf("order-%09d", i)
			}
		}
		offs := make([]int64, c.rows)
		rows := make([][]any, c.rows)
		for i := range offs {
			offs[i] = int64(k*100_000 + i)
			rows[i] = javaRecord(encodingSchema, evs[i], 2, offs[i])
		}
		path := fmt.Sprintf("%s/f%d.parquet", c.tl.layout.path(c.start), k)
		writeTestFileWith(t, c.tl, fw, path, c.start, 2, offs[0], offs[c.rows-1], evs, offs)
		files = append(files, filepath.Join(dir, filepath.FromSlash(c.tl.key(path))))
		if c.minutes {
			if w := fileDeltaWidths(t, files[k], event.ColEventTime); slices.ContainsFunc(w, func(w int) bool { return w%8 != 0 }) {
				t.Fatalf("%s: event times packed at widths %v: the case no longer covers aligned packing", c.name, w)
			}
		}
		want = append(want, rows)
	}
	read, ok := parquetjava.Read(t, files...)
	if !ok {
		return
	}
	seen := map[string]bool{}
	for k, f := range read {
		t.Logf("%s: %s, %d rows", cases[k].name, filepath.Base(f.Path), f.Rows)
		checkJavaFile(t, f, encodingSchema)
		sameRecords(t, f.Path, f.Records, want[k])
		footer := footerEncodings(t, f.Path)
		for i, c := range f.Columns {
			if !slices.Equal(c.Encodings, footer[i]) {
				t.Errorf("%s: %s: parquet-java reads encodings %v, the footer lists %v", f.Path, c.Path, c.Encodings, footer[i])
			}
			for _, e := range c.Encodings {
				seen[e] = true
			}
		}
	}
	for _, e := range []string{"RLE_DICTIONARY", "PLAIN", "DELTA_BINARY_PACKED", "BYTE_STREAM_SPLIT", "DELTA_BYTE_ARRAY"} {
		if !seen[e] {
			t.Errorf("no file has a %s column: the test no longer covers that encoding", e)
		}
	}
}

// oddValues puts values readers get wrong into evs (of encodingSchema):
// empty, non-ASCII and escaped strings, the extremes of int and long,
// NaN, -0, infinities and the extremes of double.
func oddValues(evs []event.Event) {
	strs := []string{"", "naïve – 東京", "quote \" backslash \\ tab \t newline \n nul \x00", "\U0001F600"}
	doubles := []float64{math.NaN(), math.Copysign(0, -1), math.Inf(-1), math.Inf(1), math.MaxFloat64, -math.SmallestNonzeroFloat64}
	for i := range evs {
		v := evs[i].Values
		switch i % 7 {
		case 1:
			v[1].S = strs[i%len(strs)]
			v[2] = event.Value{S: strs[(i+1)%len(strs)], Valid: true}
		case 3:
			v[3].I = []int64{math.MinInt32, math.MaxInt32}[i%2]
			v[4] = event.Value{I: []int64{math.MinInt64, math.MaxInt64}[i%2], Valid: true}
		case 5:
			v[5] = event.Value{F: doubles[i%len(doubles)], Valid: true}
		}
	}
}

// footerEncodings lists each column chunk's encodings as the file's
// footer has them (parquet-go's reading), sorted like ParquetJavaRead's.
func footerEncodings(t *testing.T, file string) [][]string {
	t.Helper()
	pf := openParquet(t, file)
	var encs [][]string
	for _, c := range pf.Metadata().RowGroups[0].Columns {
		var e []string
		for _, x := range c.MetaData.Encoding {
			e = append(e, x.String())
		}
		slices.Sort(e)
		encs = append(encs, slices.Compact(e))
	}
	return encs
}
