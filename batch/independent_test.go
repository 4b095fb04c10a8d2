package batch

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// pyReader reads a topic's lake the way a user would, with pyarrow's
// Hive-partitioned dataset reader (over its own S3 filesystem for a lake on
// object storage), and prints the row count, the distinct id count, the
// row count DuckDB reads, and the sorted ids. DuckDB reads a directory with
// read_parquet; object storage through the pyarrow dataset (its own S3
// reader, httpfs, is an extension downloaded at run time).
const pyReader = `
import os, sys, pyarrow.dataset as ds, pyarrow.fs as fs, duckdb
where = sys.argv[1]
if where.startswith("s3://"):
    s3 = fs.S3FileSystem(access_key=os.environ["LF_TEST_S3_ACCESS_KEY"], secret_key=os.environ["LF_TEST_S3_SECRET_KEY"],
                         endpoint_override=os.environ["LF_TEST_S3_ENDPOINT"], region=os.environ.get("LF_TEST_S3_REGION", "us-east-1"))
    d = ds.dataset(where[len("s3://"):], filesystem=s3, format="parquet", partitioning="hive")
else:
    d = ds.dataset(where, format="parquet", partitioning="hive")
t = d.to_table(columns=["_id", "_partition", "_offset", "_event_time"])
ids = t.column("_id").to_pylist()
print(t.num_rows, len(set(ids)))
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
if where.startswith("s3://"):
    n, = con.execute("select count(*) from d").fetchone()
else:
    n, = con.execute("select count(*) from read_parquet(?, hive_partitioning=true)", [where + "/**/*.parquet"]).fetchone()
print(n)
for i in sorted(ids): print(i)
`

// checkIndependent checks the lake of one topic (a directory, or an s3://
// URL on the development S3 server) with pyarrow and DuckDB: exactly the
// ids of evs, each once; and a directory with parquet-java too, every file
// and value (checkParquetJavaLake). It skips when python3 lacks them or
// parquet-java is missing, unless LF_REQUIRE_SERVICES=1.
func checkIndependent(t *testing.T, dir string, evs []event.Event) {
	t.Helper()
	if !strings.HasPrefix(dir, "s3://") {
		checkParquetJavaLake(t, dir, evs)
	}
	out, ok := runPython(t, "the independent reader check", "pyarrow, duckdb", pyReader, dir)
	if !ok {
		return
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := make([]string, len(evs))
	for i, e := range evs {
		want[i] = e.ID
	}
	slices.Sort(want)
	head := fmt.Sprintf("%d %d", len(evs), len(evs))
	if lines[0] != head || lines[1] != fmt.Sprint(len(evs)) {
		t.Fatalf("pyarrow: rows and distinct ids %q, duckdb rows %q; want %q and %d", lines[0], lines[1], head, len(evs))
	}
	if !slices.Equal(lines[2:], want) {
		t.Fatalf("pyarrow: ids differ from the appended ones")
	}
}

// pyViewSQL computes testView over the lake with DuckDB.
const pyViewSQL = `
import sys, duckdb
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
rows = con.execute("""
select epoch_us(time_bucket(interval 1 minute, _event_time)) as s, region,
       count(*), avg(cpu), max(cpu), min(cpu), coalesce(sum(bytes), 0), count(distinct host)
from read_parquet(?, hive_partitioning=true)
where cpu >= 0 and epoch_us(time_bucket(interval 1 minute, _event_time)) + 60000000 <= ?
group by all order by 1, 2""", [sys.argv[1] + "/**/*.parquet", int(sys.argv[2])]).fetchall()
for r in rows: print(*r, sep="\t")
`

// checkDuckDB checks batch rows against SQL run by DuckDB over the lake.
func checkDuckDB(t *testing.T, dir string, rows []windowRow) {
	t.Helper()
	horizon := int64(math.MinInt64)
	for _, r := range rows {
		horizon = max(horizon, r.start+60_000_000)
	}
	out, ok := runPython(t, "the DuckDB check", "duckdb", pyViewSQL, dir, fmt.Sprint(horizon))
	if !ok {
		return
	}
	var want []windowRow
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Split(line, "\t")
		var r windowRow
		var n, b, h int64
		var avg, mx, mn float64
		fmt.Sscan(f[0], &r.start)
		r.region = f[1]
		fmt.Sscan(f[2], &n)
		fmt.Sscan(f[3], &avg)
		fmt.Sscan(f[4], &mx)
		fmt.Sscan(f[5], &mn)
		fmt.Sscan(f[6], &b)
		fmt.Sscan(f[7], &h)
		r.aggs = []event.Value{{I: n, Valid: true}, {F: avg, Valid: true}, {F: mx, Valid: true}, {F: mn, Valid: true}, {I: b, Valid: true}, {I: h, Valid: true}}
		want = append(want, r)
	}
	sameRows(t, "batch vs DuckDB", rows, want)
}

// runPython runs a Python script with args and returns what it printed.
// ok is false when python3 or one of the modules it needs (imports, as in
// an import statement) is missing: the caller skips, unless
// LF_REQUIRE_SERVICES=1, which makes that a failure. what names the check
// in messages.
func runPython(t *testing.T, what, imports, script string, args ...string) (out *bytes.Buffer, ok bool) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import "+imports).Run()
	}
	if err != nil {
		if os.Getenv("LF_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s: python3 with %s is required (pip install pyarrow duckdb): %v", what, imports, err)
		}
		t.Logf("skipping %s: python3 with %s not found (pip install pyarrow duckdb)", what, imports)
		return nil, false
	}
	out = new(bytes.Buffer)
	var stderr bytes.Buffer
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, stderr.String())
	}
	return out, true
}
