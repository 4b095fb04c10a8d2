package batch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestMislabelledFile: a lake file whose rows are not those its manifest
// entry says (another offset range, another partition, another period),
// though its checksum is right, fails the job with ErrCorruptFile naming
// the file: the batch engine checks partitions, offsets and event times by
// the column chunks' statistics instead of decoding them or comparing each
// row.
func TestMislabelledFile(t *testing.T) {
	// Three files of one hour: partition 0 offsets [0, 299] (a) and
	// [300, 599] (b), partition 1 offsets [0, 299] (c). The entry of a new
	// file, made to answer for a's range, gets the bytes of another; or
	// a's own bytes, but its entry says the hour before.
	for _, tc := range []struct {
		name  string
		other int // the file whose bytes it gets: 0 = a (an hour early), 1 = b, 2 = c
		want  string
	}{
		{"offsets", 1, "offsets"},
		{"partition", 2, "partition"},
		{"period", 0, "event time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, []pipelines.View{testView("cpu_by_region", "metrics")})
			b, err := New(p, nil, nil, Options{Logger: testLogger(t), Now: func() time.Time { return t0.Add(3 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			tl := b.lakes["metrics"]
			var evs []event.Event
			for i := range 900 {
				evs = append(evs, testEvent("e", i, t0, 3*time.Second))
			}
			writeLakeDirect(t, tl, 0, evs[:300], 0)
			writeLakeDirect(t, tl, 0, evs[300:600], 300)
			writeLakeDirect(t, tl, 1, evs[600:], 0)
			ctx := context.Background()
			m := tl.ms.local()
			if len(m.Files()) != 3 {
				t.Fatalf("%d files, want 3", len(m.Files()))
			}
			files := map[string]fileEntry{}
			for _, f := range m.Files() {
				files[rangesString(f.Ranges)] = f
			}
			a, o := files["p0 [0, 299]"], files[[]string{"p0 [0, 299]", "p0 [300, 599]", "p1 [0, 299]"}[tc.other]]
			data, err := tl.st.ReadFile(ctx, tl.key(o.Path))
			if err != nil {
				t.Fatal(err)
			}
			bad := a
			if tc.other == 0 {
				bad.Start, bad.End = a.Start-hourMicros, a.End-hourMicros
			}
			bad.Path = tl.layout.path(bad.Start) + "/p0-0-299x.parquet"
			bad.Rows, bad.Bytes, bad.CRC32C = o.Rows, o.Bytes, o.CRC32C
			bad.Ranges = []offsetRange{{Partition: 0, First: 0, Last: 299, Rows: o.Rows}}
			if err := tl.st.WriteFile(ctx, tl.key(bad.Path), data, true); err != nil {
				t.Fatal(err)
			}
			if _, err := tl.ms.commit(ctx, func(*manifest) (*delta, error) {
				return &delta{Remove: []string{a.Path}, Add: []fileEntry{bad}}, nil
			}); err != nil {
				t.Fatal(err)
			}
			s, err := b.recomputeWait(ctx, "cpu_by_region", time.Time{}, time.Time{}, nil)
			if err == nil || s.State != api.JobFailed || !strings.Contains(err.Error(), ErrCorruptFile.Error()) {
				t.Fatalf("job over a mislabelled file: %+v, %v", s, err)
			}
			if !strings.Contains(err.Error(), bad.Path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name the file %s and its %s: %v", bad.Path, tc.want, err)
			}
			t.Log(err)
		})
	}
}
