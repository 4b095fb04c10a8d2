package batch

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestMislabelledFile: a lake file whose rows are not those its manifest
// entry says (another offset range, another partition, another hour),
// though its checksum is right, fails the job with ErrCorruptFile naming
// the file: the batch engine checks partitions, offsets and event times by
// the column chunks' statistics instead of decoding them or comparing each
// row.
func TestMislabelledFile(t *testing.T) {
	// other picks the file whose contents replace the first file's.
	for _, tc := range []struct {
		name  string
		other func(first, f fileEntry) bool
		want  string
	}{
		{"offsets", func(first, f fileEntry) bool { return f.Partition == first.Partition && f.First > first.Last }, "offsets"},
		{"partition", func(first, f fileEntry) bool { return f.Partition != first.Partition && f.Hour == first.Hour }, "partition"},
		// nil: the file stays, its entry says the hour before its rows..
		{"hour", nil, "event time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			// Two rounds: each partition gets two files of one hour.
			for round := range 2 {
				var evs []event.Event
				for i := range 300 {
					evs = append(evs, testEvent("e", round*300+i, t0, 3*time.Second))
				}
				e.add(evs)
			}
			tl := e.b.lakes["metrics"]
			var path string
			_, err := tl.ms.update(func(m *manifest) error {
				first := &m.Files[0]
				path = first.Path
				if tc.other == nil {
					first.Hour -= hourMicros
					return nil
				}
				i := slices.IndexFunc(m.Files, func(f fileEntry) bool { return tc.other(*first, f) })
				if i < 0 {
					t.Fatalf("no file to swap in among %+v", m.Files)
				}
				o := m.Files[i]
				data, err := os.ReadFile(tl.filePath(o.Path))
				if err != nil {
					return err
				}
				if err := os.WriteFile(tl.filePath(first.Path), data, 0o644); err != nil {
					return err
				}
				first.Rows, first.Bytes, first.CRC32C = o.Rows, o.Bytes, o.CRC32C
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.b.recomputeWait(context.Background(), "cpu_by_region", time.Time{}, time.Time{}, nil)
			if err == nil || s.State != api.JobFailed || !strings.Contains(err.Error(), ErrCorruptFile.Error()) {
				t.Fatalf("job over a mislabelled file: %+v, %v", s, err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name the file %s and its %s: %v", path, tc.want, err)
			}
			t.Log(err)
		})
	}
}
