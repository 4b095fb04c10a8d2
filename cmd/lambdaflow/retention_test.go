package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLakeRetentionRuns: a topic whose lake keeps two hours, in a running
// process. The events of an hour six hours ago leave the lake at a
// compaction pass (SQL no longer reads them, the metric counts their file);
// those of the last minutes stay; a recompute asked from before says why
// it left the older windows alone.
func TestLakeRetentionRuns(t *testing.T) {
	file := writeFile(t, `version: 1
name: keep
data_dir: ${LF_DATA}
topics:
  - name: clicks
    partitions: 2
    key: page
    time: ts
    schema: { ts: timestamp, page: string, ms: long }
    lake: { retention: 2h }
views:
  - name: per_page
    from: clicks
    group_by: [page]
    window: { type: tumbling, size: 1m }
    aggregates: { n: count() }
lake: { roll: { max_rows: 1000, max_age: 1s }, compact: { interval: 1s } }
`)
	s := startServer(t, file, t.TempDir())
	defer s.stop()
	now := time.Now().UTC()
	old, recent := now.Add(-6*time.Hour).Truncate(time.Hour), now.Add(-10*time.Minute)
	var b strings.Builder
	for i := range 3 {
		fmt.Fprintf(&b, `{"id":"old-%d","ts":%q,"page":"a","ms":%d}`+"\n", i, old.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i)
	}
	for i := range 2 {
		fmt.Fprintf(&b, `{"id":"new-%d","ts":%q,"page":"b","ms":%d}`+"\n", i, recent.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i)
	}
	post(t, s, "clicks", b.String())
	const expired = `lambdaflow_lake_expired_files_total{component="batch",pipeline="keep",topic="clicks"}`
	waitFor(t, "the old hour to leave the lake", func() error {
		got, err := sqlRows(t, s, "SELECT _id FROM lake.clicks ORDER BY _id")
		if err != nil {
			return err
		}
		if got != "new-0\nnew-1\n" {
			return fmt.Errorf("the lake holds:\n%s", got)
		}
		if v := metricValue(t, s, expired); v != "1" {
			return fmt.Errorf("%s = %q, want 1", expired, v)
		}
		return nil
	})
	// `lambdaflow batch run` from seven hours ago: the job says why it
	// left the windows before the retention alone.
	out, errOut, code := runCLI(t, "", "batch", "run", "per_page", "--from", now.Add(-7*time.Hour).Format(time.RFC3339), "--addr", s.addr)
	if code != 0 || !strings.Contains(out, "succeeded") || !strings.Contains(out, "note: windows starting before ") ||
		!strings.Contains(out, "keep the rows last computed") || !strings.Contains(out, "topics[].lake.retention") {
		t.Errorf("batch run: exit %d\n%s%s", code, out, errOut)
	}
}
