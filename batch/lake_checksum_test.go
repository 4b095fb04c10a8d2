package batch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestFileChecksumBothWays: a file read whole into memory (readChecked,
// files up to memFileBytes), one mapped (mapChecked, larger local files)
// and one checked in a pass of its own (checkSum, larger files elsewhere)
// accept the same intact file, with the same bytes, and all refuse it with
// one bit flipped or a byte missing.
func TestFileChecksumBothWays(t *testing.T) {
	tl, dir := testDirLake(t, exampleSchema)
	st := tl.st
	evs := exampleEvents(5000, 9)
	start := periodOf(evs[0].Time, hourMicros)
	var rows []int
	for i := range evs {
		if periodOf(evs[i].Time, hourMicros) == start {
			rows = append(rows, i)
		}
	}
	in := evs[:len(rows)]
	offs := make([]int64, len(in))
	for i := range offs {
		offs[i] = int64(i)
	}
	path := periodPath(start, hourMicros) + "/p0-0-4999.parquet"
	fe := writeTestFile(t, tl, path, start, 0, 0, int64(len(in))-1, in, offs)
	file := filepath.Join(dir, filepath.FromSlash(tl.key(path)))
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	open := func() lakestore.Object {
		t.Helper()
		o, err := st.Open(context.Background(), tl.key(path))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return o
	}
	// Intact: both accept; the memory copy holds the file's bytes.
	if err := checkSum(open(), path, fe); err != nil {
		t.Fatalf("checkSum of an intact file: %v", err)
	}
	m, err := readChecked(open(), path, fe)
	if err != nil {
		t.Fatalf("readChecked of an intact file: %v", err)
	}
	mapped, err := mapChecked(open(), path, fe)
	if err != nil || mapped == nil {
		t.Fatalf("mapChecked of an intact file: %v, %v", mapped, err)
	}
	for _, m := range []*memFile{m, mapped} {
		got := make([]byte, m.Size())
		if n, err := m.ReadAt(got, 0); n != len(want) || (err != nil && err != io.EOF) || !bytes.Equal(got, want) {
			t.Fatalf("read %d of %d bytes (%v), equal %v", n, len(want), err, bytes.Equal(got, want))
		}
		if n, err := m.ReadAt(make([]byte, 10), m.Size()-4); n != 4 || err != io.EOF {
			t.Fatalf("read past the end: %d bytes, %v", n, err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}

	for name, harm := range map[string]func([]byte) []byte{
		"one bit":  func(b []byte) []byte { b[len(b)/3] ^= 0x10; return b },
		"one byte": func(b []byte) []byte { return b[:len(b)-1] },
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(file, harm(bytes.Clone(want)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := checkSum(open(), path, fe); !errors.Is(err, ErrCorruptFile) {
				t.Fatalf("checkSum: %v, want ErrCorruptFile", err)
			}
			if _, err := readChecked(open(), path, fe); !errors.Is(err, ErrCorruptFile) {
				t.Fatalf("readChecked: %v, want ErrCorruptFile", err)
			}
			if _, err := mapChecked(open(), path, fe); !errors.Is(err, ErrCorruptFile) {
				t.Fatalf("mapChecked: %v, want ErrCorruptFile", err)
			}
		})
	}
}

// testDirLake is an hourly lake of topic "t" with schema in a directory of
// its own (returned too, for reading its files directly).
func testDirLake(t testing.TB, schema event.Schema) (*topicLake, string) {
	t.Helper()
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := lakestore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &topicLake{topic: &pipelines.Topic{Name: "t", Schema: schema}, st: st, ls: ls, layout: layout{size: hourMicros}}, dir
}
