package batch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLakeRewrite rewrites the data files of a kept lake topic directory
// (LF_REWRITE_LAKE, e.g. the backfill benchmark's with -keep) with this
// build's writer, one file per input file (its rows, its ranges), into
// LF_REWRITE_OUT (default: a temporary directory), and logs the bytes per
// row: how a writer change measures on real files without a full run.
// LF_REWRITE_PERIOD is the files' period (default 24h). LF_REWRITE_GROUP
// (week, month or year) writes the rows of each group of input files, by
// their dt= date, into one file instead: what larger partitions would
// weigh. Skipped without LF_REWRITE_LAKE.
func TestLakeRewrite(t *testing.T) {
	in := os.Getenv("LF_REWRITE_LAKE")
	if in == "" {
		t.Skip("LF_REWRITE_LAKE names no lake topic directory")
	}
	out := os.Getenv("LF_REWRITE_OUT")
	if out == "" {
		out = t.TempDir()
	}
	period := 24 * time.Hour
	if p := os.Getenv("LF_REWRITE_PERIOD"); p != "" {
		var err error
		if period, err = time.ParseDuration(p); err != nil {
			t.Fatal(err)
		}
	}
	var files []string
	err := filepath.WalkDir(in, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	groups, err := rewriteGroups(files, os.Getenv("LF_REWRITE_GROUP"))
	if err != nil {
		t.Fatal(err)
	}
	var fw *fileWriter
	var rows, size int64
	var cpu time.Duration
	for _, group := range groups {
		f := group[0]
		schema, evs, parts, offs, ranges := readLakeRows(t, f)
		for _, g := range group[1:] {
			_, gEvs, gParts, gOffs, gRanges := readLakeRows(t, g)
			evs, parts, offs, ranges = append(evs, gEvs...), append(parts, gParts...), append(offs, gOffs...), append(ranges, gRanges...)
		}
		if fw == nil {
			ls, err := newLakeSchema(schema)
			if err != nil {
				t.Fatal(err)
			}
			fw = newFileWriter(ls, nil)
			fw.sorter.schema = schema
		}
		buf := newRowBuffer(schema)
		for i := range evs {
			p := periodOf(evs[i].Time, period.Microseconds())
			if len(group) > 1 {
				p = 0 // one file for the group
			}
			buf.add(p, int(parts[i]), offs[i], &evs[i])
		}
		if len(buf.periods) != 1 {
			t.Fatalf("%s: rows of %d periods", f, len(buf.periods))
		}
		var dst bytes.Buffer
		c0 := cpuTime()
		for _, runs := range buf.periods {
			pr := &fw.sorter
			if err := pr.reset(runs); err != nil {
				t.Fatal(err)
			}
			fw.surveySorted(pr)
			if err := fw.start(&dst, ranges); err != nil {
				t.Fatal(err)
			}
			if err := fw.addSorted(pr); err != nil {
				t.Fatal(err)
			}
			if _, err := fw.finish(); err != nil {
				t.Fatal(err)
			}
			pr.release()
		}
		cpu += cpuTime() - c0
		rel, _ := filepath.Rel(in, f)
		if err := os.MkdirAll(filepath.Join(out, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, rel), dst.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		// The rewritten file holds the same rows (in whatever order).
		_, got, gotParts, gotOffs, gotRanges := readLakeRows(t, filepath.Join(out, rel))
		if !reflect.DeepEqual(gotRanges, ranges) || !reflect.DeepEqual(byPosition(got, gotParts, gotOffs), byPosition(evs, parts, offs)) {
			t.Fatalf("%s: the rewritten file holds other rows or ranges", rel)
		}
		rows += int64(len(evs))
		size += int64(dst.Len())
	}
	t.Logf("%d files, %d rows, %.2f B/row, %.0f µs CPU a file, into %s", len(groups), rows, float64(size)/float64(max(rows, 1)),
		float64(cpu.Microseconds())/float64(max(len(groups), 1)), out)
}

// rewriteGroups groups lake files (sorted paths) by the week (ISO), month
// or year of their dt= directory; by ("") puts each file in a group of its
// own.
func rewriteGroups(files []string, by string) ([][]string, error) {
	var groups [][]string
	last := ""
	for _, f := range files {
		if by == "" {
			groups = append(groups, []string{f})
			continue
		}
		dir := filepath.Base(filepath.Dir(f))
		if strings.HasPrefix(dir, "hour=") {
			dir = filepath.Base(filepath.Dir(filepath.Dir(f)))
		}
		day, err := time.Parse("dt=2006-01-02", dir)
		if err != nil {
			return nil, fmt.Errorf("%s: no dt= directory to group by: %w", f, err)
		}
		var key string
		switch by {
		case "week":
			y, w := day.ISOWeek()
			key = fmt.Sprintf("%d-W%02d", y, w)
		case "month":
			key = day.Format("2006-01")
		case "year":
			key = day.Format("2006")
		default:
			return nil, fmt.Errorf("LF_REWRITE_GROUP %q: want week, month or year", by)
		}
		if key != last || len(groups) == 0 {
			groups = append(groups, nil)
			last = key
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], f)
	}
	return groups, nil
}

// byPosition lists rows by partition and offset.
func byPosition(evs []event.Event, parts []int32, offs []int64) map[[2]int64]event.Event {
	m := make(map[[2]int64]event.Event, len(evs))
	for i := range evs {
		m[[2]int64{int64(parts[i]), offs[i]}] = evs[i]
	}
	return m
}

// readLakeRows reads a lake file with parquet-go's row reader: the topic
// schema (the columns before the metadata ones), its rows as events with
// their partitions and offsets, and its ranges.
func readLakeRows(t *testing.T, path string) (event.Schema, []event.Event, []int32, []int64, []offsetRange) {
	t.Helper()
	pf := openParquet(t, path)
	var schema event.Schema
	var kinds []parquet.Kind
	for _, f := range pf.Schema().Fields() {
		if f.Name() == event.ColID {
			break
		}
		typ := event.TypeString
		switch f.Type().Kind() {
		case parquet.Int32:
			typ = event.TypeInt
		case parquet.Int64:
			typ = event.TypeLong
			if isTimestamp(f.Type()) {
				typ = event.TypeTimestamp
			}
		case parquet.Double:
			typ = event.TypeDouble
		case parquet.Boolean:
			typ = event.TypeBool
		}
		schema = append(schema, event.Field{Name: f.Name(), Type: typ, Required: !f.Optional()})
		kinds = append(kinds, f.Type().Kind())
	}
	var ranges []offsetRange
	if v, ok := pf.Lookup(rangesKey); ok {
		var err error
		if ranges, err = parseRanges(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	n := len(schema)
	var evs []event.Event
	var parts []int32
	var offs []int64
	r := parquet.NewReader(pf)
	row := make([]parquet.Row, 64)
	for {
		k, err := r.ReadRows(row)
		for _, rw := range row[:k] {
			ev := event.Event{Values: make([]event.Value, n)}
			var part int32
			var off int64
			for _, v := range rw {
				c := v.Column()
				switch {
				case c < n:
					if v.IsNull() {
						continue
					}
					switch kinds[c] {
					case parquet.ByteArray:
						ev.Values[c] = event.Value{S: string(v.ByteArray()), Valid: true}
					case parquet.Int32:
						ev.Values[c] = event.Value{I: int64(v.Int32()), Valid: true}
					case parquet.Int64:
						ev.Values[c] = event.Value{I: v.Int64(), Valid: true}
					case parquet.Double:
						ev.Values[c] = event.Value{F: v.Double(), Valid: true}
					case parquet.Boolean:
						ev.Values[c] = event.Value{Valid: true}
						if v.Boolean() {
							ev.Values[c].I = 1
						}
					}
				case c == n:
					ev.ID = string(v.ByteArray())
				case c == n+1:
					part = v.Int32()
				case c == n+2:
					off = v.Int64()
				case c == n+3:
					ev.Time = v.Int64()
				case c == n+4:
					ev.Ingest = v.Int64()
				}
			}
			evs, parts, offs = append(evs, ev), append(parts, part), append(offs, off)
		}
		if err != nil {
			break
		}
	}
	if int64(len(evs)) != pf.NumRows() {
		t.Fatalf("%s: read %d of %d rows", path, len(evs), pf.NumRows())
	}
	return schema, evs, parts, offs, ranges
}

func isTimestamp(t parquet.Type) bool {
	lt := t.LogicalType()
	if lt == nil {
		return false
	}
	_, ok := lt.Value.(*format.TimestampType)
	return ok
}

// parseRanges reads a file's footer ranges (rangesKey): arrays of
// [partition, first, last, rows], or the manifest's objects in files
// written by earlier versions.
func parseRanges(v string) ([]offsetRange, error) {
	var rs []offsetRange
	if strings.HasPrefix(v, "[{") || v == "null" {
		return rs, json.Unmarshal([]byte(v), &rs)
	}
	var arrs [][4]int64
	if err := json.Unmarshal([]byte(v), &arrs); err != nil {
		return nil, err
	}
	for _, a := range arrs {
		rs = append(rs, offsetRange{Partition: int(a[0]), First: a[1], Last: a[2], Rows: a[3]})
	}
	return rs, nil
}

// TestRangesFooter checks the footer form of offset ranges against the
// manifest's.
func TestRangesFooter(t *testing.T) {
	rs := []offsetRange{{Partition: 0, First: 1200, Last: 1799, Rows: 412}, {Partition: 7, First: 0, Last: 1 << 40, Rows: 1}}
	got := string(appendRanges(nil, rs))
	if want := "[[0,1200,1799,412],[7,0,1099511627776,1]]"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	back, err := parseRanges(got)
	if err != nil || !reflect.DeepEqual(back, rs) {
		t.Fatalf("read back %v, %v", back, err)
	}
	if got := string(appendRanges(nil, nil)); got != "[]" {
		t.Fatalf("no ranges: %s", got)
	}
}
