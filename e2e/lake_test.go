package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/parquetjava"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestLakeReadByParquetJava reads the lake `lambdaflow run` wrote (files
// rolled every second and compacted every two) with parquet-java, the
// Parquet reader of Spark and Hive, which finds each column chunk by its
// name: every file's columns are the topic's fields and the lake's own, in
// order, with their types and true null counts, and the files hold every
// event posted once, at the partition and offset ingest answered, with its
// values.
func TestLakeReadByParquetJava(t *testing.T) {
	p, f := sharedPipeline(t)
	if !f.lake {
		t.Skip("the lake layer does not run in `lambdaflow run`")
	}
	r, ok := parquetjava.New(t)
	if !ok {
		return
	}
	dir := filepath.Join(p.dataDir, "lake", seedTopic)
	var read []parquetjava.File
	// The lake is complete once its files hold every event, each once: a
	// listing taken while compaction replaces files is read again.
	testenv.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
		files, err := parquetjava.HiveFiles(dir)
		if err != nil {
			return err
		}
		if read, err = r.Read(files...); err != nil {
			return err
		}
		var rows int64
		for _, rf := range read {
			rows += int64(len(rf.Records))
		}
		if rows != int64(len(f.events)) {
			return fmt.Errorf("%d files hold %d rows, want %d", len(files), rows, len(f.events))
		}
		return nil
	})

	names := []string{"ts", "host", "region", "cpu", "bytes", "_id", "_partition", "_offset", "_event_time", "_ingest_time"}
	types := []string{"INT64", "BINARY", "BINARY", "DOUBLE", "INT64", "BINARY", "INT32", "INT64", "INT64", "INT64"}
	want := map[string][]any{}
	num := func(v int64) any { return json.Number(strconv.FormatInt(v, 10)) }
	for i, e := range f.events {
		// Events posted after the seed (postFresh) have no offsets kept.
		var off any
		if i < len(f.offsets) {
			off = num(f.offsets[i][1])
		}
		want[e.ID] = []any{num(e.TS.UnixMicro()), e.Host, e.Region, parquetjava.Double(e.CPU), num(e.Bytes),
			e.ID, num(int64(e.partition())), off, num(e.TS.UnixMicro())}
	}
	seen := map[string]bool{}
	for _, rf := range read {
		for i, c := range rf.Columns {
			if i >= len(names) || c.Path != names[i] || c.Type != types[i] || c.Codec != "ZSTD" {
				t.Fatalf("%s: column %d is %s %s %s, want %s of %s, ZSTD", rf.Path, i, c.Path, c.Type, c.Codec, names[i], types[i])
			}
		}
		if len(rf.Columns) != len(names) {
			t.Fatalf("%s: %d columns, want %d", rf.Path, len(rf.Columns), len(names))
		}
		parquetjava.CheckStats(t, rf)
		for _, rec := range rf.Records {
			id, _ := rec[5].(string)
			w, ok := want[id]
			if !ok || seen[id] {
				t.Fatalf("%s: id %q was not posted, or is in the lake twice", rf.Path, id)
			}
			seen[id] = true
			rec = slices.Clone(rec[:len(w)]) // _ingest_time is the log's
			if w[7] == nil {
				rec[7] = nil
			}
			got, _ := json.Marshal(rec)
			exp, _ := json.Marshal(w)
			if string(got) != string(exp) {
				t.Errorf("%s: %s, want %s", rf.Path, got, exp)
			}
		}
	}
	t.Logf("parquet-java read %d posted events from %d files of %s", len(seen), len(read), dir)
}
