package s3test_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// pyS3 reads a Hive-partitioned Parquet dataset from the server with
// pyarrow's own S3 filesystem (the AWS C++ SDK, not ours), prints its row
// count, the sum of "bytes" and the hours, then writes one file back
// through the same filesystem.
const pyS3 = `
import os, sys, pyarrow as pa, pyarrow.fs as fs, pyarrow.dataset as ds, pyarrow.parquet as pq
s3 = fs.S3FileSystem(access_key=os.environ["S3_ACCESS"], secret_key=os.environ["S3_SECRET"],
                     endpoint_override=os.environ["S3_ENDPOINT"], region=os.environ["S3_REGION"])
d = ds.dataset(sys.argv[1], filesystem=s3, format="parquet", partitioning="hive")
t = d.to_table()
print(t.num_rows, pa.compute.sum(t["bytes"]).as_py(), *sorted(set(t["hour"].to_pylist())))
pq.write_table(pa.table({"host": ["py-1", "py-2"], "bytes": [7, 8]}), sys.argv[2], filesystem=s3)
`

type lakeRow struct {
	Host  string `parquet:"host"`
	Bytes int64  `parquet:"bytes"`
}

func TestPyarrowS3FileSystem(t *testing.T) {
	srv := s3test.Env(t)
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import pyarrow.fs; pyarrow.fs.S3FileSystem").Run()
	}
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("python3 with pyarrow (and its S3 filesystem) is required: run deploy/dev/test-tools.sh: %v", err))
	}
	c := srv.Client()
	prefix := srv.Prefix(t, "pyarrow")
	var sum int64
	for h := range 2 {
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[lakeRow](&buf)
		rows := make([]lakeRow, 100)
		for i := range rows {
			rows[i] = lakeRow{Host: fmt.Sprintf("web-%d", i%7), Bytes: int64(h*1000 + i)}
			sum += rows[i].Bytes
		}
		if _, err := w.Write(rows); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		put(t, c, srv.Bucket, fmt.Sprintf("%smetrics/dt=2026-01-02/hour=%02d/0-99.parquet", prefix, h), buf.Bytes())
	}
	back := prefix + "from-pyarrow/part-0.parquet"
	var out, stderr bytes.Buffer
	cmd := exec.Command(py, "-c", pyS3, srv.Bucket+"/"+prefix+"metrics", srv.Bucket+"/"+back)
	cmd.Env = append(os.Environ(), "S3_ACCESS="+srv.AccessKey, "S3_SECRET="+srv.SecretKey,
		"S3_ENDPOINT="+srv.Endpoint, "S3_REGION="+srv.Region)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, stderr.String())
	}
	if got, want := strings.TrimSpace(out.String()), fmt.Sprintf("200 %d 0 1", sum); got != want {
		t.Fatalf("pyarrow read %q, want %q (rows, sum of bytes, hours)", got, want)
	}
	body, _ := get(t, c, srv.Bucket, back, "")
	f, err := parquet.OpenFile(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the file pyarrow wrote: %v", err)
	}
	if f.NumRows() != 2 {
		t.Fatalf("the file pyarrow wrote has %d rows, want 2", f.NumRows())
	}
}
