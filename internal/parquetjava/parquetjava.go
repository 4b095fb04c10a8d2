// Package parquetjava reads Parquet files with parquet-java (parquet-mr),
// the Parquet reader of Spark and Hive, so that tests can check the lake
// with a reader that finds each column chunk by its path_in_schema, where
// the other readers the lake is tested with (the batch layer's, arrow-go,
// pyarrow, DuckDB) go by position. It runs ParquetJavaRead.java (embedded
// here, compiled with javac on first use) against the jars
// deploy/dev/parquet-java.sh fetches from Maven Central, one JVM for all
// the files of a call. It is test support only; nothing outside tests
// imports it.
package parquetjava

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

//go:embed ParquetJavaRead.java
var source []byte

// File is what parquet-java read from one file.
type File struct {
	Path      string            `json:"path"`
	Rows      int64             `json:"rows"` // as the footer says
	CreatedBy string            `json:"created_by"`
	KV        map[string]string `json:"kv"` // the footer's key-value metadata
	Columns   []Column          `json:"-"`  // one per column chunk, in file order
	// Records holds one value per column for each row, as encoding/json
	// decodes ParquetJavaRead's output with UseNumber: nil, json.Number
	// for INT32 and INT64, bool, string for BYTE_ARRAY, and for DOUBLE
	// the hexadecimal of its bits (see Double).
	Records [][]any `json:"-"`
}

// Column is one column chunk as parquet-java read it: its path, the
// schema's column at that path, and the chunk's metadata.
type Column struct {
	Path       string   `json:"path"`
	Type       string   `json:"type"`       // INT32, INT64, DOUBLE, BOOLEAN, BINARY
	Logical    string   `json:"logical"`    // as parquet-java prints it: STRING, TIMESTAMP(MICROS,true), INTEGER(64,true); "" for none
	Repetition string   `json:"repetition"` // REQUIRED, OPTIONAL
	Codec      string   `json:"codec"`
	Encodings  []string `json:"encodings"` // sorted
	Values     int64    `json:"values"`
	Stats      *Stats   `json:"stats"` // nil: the chunk has none
}

// Stats are a chunk's statistics as parquet-java reads them: Min and Max
// are nil when the chunk has no bounds, else values as in Records.
type Stats struct {
	Nulls    int64 `json:"nulls"` // -1: not set
	Min, Max any
}

// Double is a double as Records hold it.
func Double(f float64) string {
	return fmt.Sprintf("%x", math.Float64bits(f))
}

// Reader runs parquet-java.
type Reader struct {
	java, classpath string
}

// New finds Java and parquet-java's jars and compiles the reader if need
// be. ok is false when something is missing and the test skips (it fails
// instead under LF_REQUIRE_SERVICES=1).
func New(t testing.TB) (r *Reader, ok bool) {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		testenv.Missing(t, "java not found: install Debian package openjdk-17-jdk-headless")
		return nil, false
	}
	lib := Lib()
	if _, err := os.Stat(filepath.Join(lib, ".complete")); err != nil {
		testenv.Missing(t, "parquet-java is not fetched: run deploy/dev/parquet-java.sh (or set LF_TEST_PARQUET_JAVA_LIB)")
		return nil, false
	}
	classes, ok := compile(t, lib)
	if !ok {
		return nil, false
	}
	return &Reader{java: java, classpath: filepath.Join(lib, "*") + string(os.PathListSeparator) + classes}, true
}

// Read reads files with parquet-java, in one JVM: an error when it cannot
// read one of them.
func (r *Reader) Read(files ...string) ([]File, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(r.java, append([]string{"-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", r.classpath, "ParquetJavaRead"}, files...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("parquet-java: %w\n%s", err, stderr.String())
	}
	read, err := parse(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("parquet-java's output: %w", err)
	}
	if len(read) != len(files) {
		return nil, fmt.Errorf("parquet-java read %d files, want %d", len(read), len(files))
	}
	return read, nil
}

// Read is New and Reader.Read, failing t if parquet-java cannot read a
// file.
func Read(t testing.TB, files ...string) (read []File, ok bool) {
	t.Helper()
	r, ok := New(t)
	if !ok {
		return nil, false
	}
	read, err := r.Read(files...)
	if err != nil {
		t.Fatal(err)
	}
	return read, true
}

// parse reads ParquetJavaRead's lines: file, then its column and row lines.
func parse(out string) ([]File, error) {
	var read []File
	for n, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		kind, body, _ := strings.Cut(line, "\t")
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		var err error
		switch {
		case kind == "file":
			read = append(read, File{})
			err = dec.Decode(&read[len(read)-1])
		case kind == "column" && len(read) > 0:
			var c Column
			err = dec.Decode(&c)
			read[len(read)-1].Columns = append(read[len(read)-1].Columns, c)
		case kind == "row" && len(read) > 0:
			var r []any
			err = dec.Decode(&r)
			read[len(read)-1].Records = append(read[len(read)-1].Records, r)
		default:
			err = errors.New("unexpected line")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d %.200q: %w", n+1, line, err)
		}
	}
	return read, nil
}

// Lib is where deploy/dev/parquet-java.sh put parquet-java's jars:
// LF_TEST_PARQUET_JAVA_LIB, else under LF_SERVICES_DIR, else under the
// repository's .services.
func Lib() string {
	if lib := os.Getenv("LF_TEST_PARQUET_JAVA_LIB"); lib != "" {
		return lib
	}
	if dir := os.Getenv("LF_SERVICES_DIR"); dir != "" {
		return filepath.Join(dir, "parquet-java", "lib")
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".services", "parquet-java", "lib")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, ".services", "parquet-java", "lib")
		}
	}
}

// compile compiles the reader once per version of its source and of the
// jars, into a directory beside lib (javac takes longer than the reading),
// and returns that directory. Test processes that race compile each into
// a temporary directory and rename it into place.
func compile(t testing.TB, lib string) (string, bool) {
	t.Helper()
	version, _ := os.ReadFile(filepath.Join(lib, ".complete"))
	sum := sha256.Sum256(append(append([]byte(nil), source...), version...))
	classes := filepath.Join(filepath.Dir(lib), "classes-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(classes, "ParquetJavaRead.class")); err == nil {
		return classes, true
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		testenv.Missing(t, "javac not found: install Debian package openjdk-17-jdk-headless")
		return "", false
	}
	tmp, err := os.MkdirTemp(filepath.Dir(lib), ".classes-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "ParquetJavaRead.java")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(javac, "-nowarn", "-d", filepath.Join(tmp, "classes"), "-cp", filepath.Join(lib, "*"), src).CombinedOutput(); err != nil {
		t.Fatalf("javac ParquetJavaRead.java: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "classes"), classes); err != nil {
		if _, serr := os.Stat(filepath.Join(classes, "ParquetJavaRead.class")); serr != nil {
			t.Fatal(err)
		}
	}
	return classes, true
}

// CheckStats checks each column chunk's statistics against the records
// parquet-java read: every chunk has its null count (which readers prune
// by: a count of 0 makes DuckDB and parquet-java's filters take the column
// for one without nulls) and it is right; an INT32 or INT64 chunk's bounds,
// where it has them, are the records' minimum and maximum. It reports
// whether each chunk has bounds.
func CheckStats(t testing.TB, f File) (bounds []bool) {
	t.Helper()
	bounds = make([]bool, len(f.Columns))
	for i, c := range f.Columns {
		if c.Stats == nil {
			t.Errorf("%s: %s: no statistics, want at least the null count", f.Path, c.Path)
			continue
		}
		var nulls int64
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for _, r := range f.Records {
			if i >= len(r) {
				t.Fatalf("%s: a record of %d values, want %d", f.Path, len(r), len(f.Columns))
			}
			n, isNum := r[i].(json.Number)
			switch {
			case r[i] == nil:
				nulls++
			case isNum:
				v, err := n.Int64()
				if err != nil {
					t.Fatalf("%s: %s: %v", f.Path, c.Path, err)
				}
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if c.Stats.Nulls != nulls {
			t.Errorf("%s: %s: statistics say %d nulls, the rows have %d", f.Path, c.Path, c.Stats.Nulls, nulls)
		}
		bounds[i] = c.Stats.Min != nil || c.Stats.Max != nil
		if bounds[i] && (c.Type == "INT32" || c.Type == "INT64") {
			if got, rows := fmt.Sprintf("%v %v", c.Stats.Min, c.Stats.Max), fmt.Sprintf("%d %d", lo, hi); got != rows {
				t.Errorf("%s: %s: statistics' minimum and maximum %s, the rows' %s", f.Path, c.Path, got, rows)
			}
		}
	}
	return bounds
}

// HiveFiles lists the Parquet files under dir as Hive-style readers do:
// *.parquet, skipping names that start with . or _ (and what is in such
// directories).
func HiveFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}
