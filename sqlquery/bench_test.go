//go:build !noduckdb

package sqlquery

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

type fixedViews map[string][]viewrow.Row

func (f fixedViews) Rows(view string) ([]viewrow.Row, bool) {
	r, ok := f[view]
	return r, ok
}

// BenchmarkQueryView measures one query's fixed cost (its own database,
// the parse check, the lock-down) plus copying a view of 1,000 rows in.
func BenchmarkQueryView(b *testing.B) {
	p := &pipelines.Pipeline{
		Topics: []pipelines.Topic{{Name: "m", Partitions: 1, Schema: event.Schema{{Name: "host", Type: event.TypeString}, {Name: "cpu", Type: event.TypeDouble}}}},
		Views: []pipelines.View{{Name: "v", From: "m", GroupBy: []string{"host"},
			Aggregates: pipelines.Aggregates{{Name: "n", Func: "count"}}}},
	}
	rows := make([]viewrow.Row, 1000)
	for i := range rows {
		rows[i] = viewrow.Row{Start: int64(i) * 60e6, End: int64(i+1) * 60e6,
			Group: []event.Value{{S: "h", Valid: true}}, Aggs: []event.Value{{I: int64(i), Valid: true}}, Final: true, Layer: viewrow.LayerSpeed}
	}
	e := New(p, Options{Views: fixedViews{"v": rows}})
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Query(context.Background(), Request{SQL: "SELECT count(*), sum(n) FROM v"})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Rows) != 1 {
			b.Fatalf("rows %v", res.Rows)
		}
	}
}

// BenchmarkQueryLakeBounded measures a query over the last day of a lake
// of ten days (240 hourly files of 2,000 rows), reading only the files its
// WHERE leaves (a day either side: 72 files) against reading every file
// (the baseline, as before bounds were read), the two alternated.
func BenchmarkQueryLakeBounded(b *testing.B) {
	const days, perFile = 10, 2000
	dir := b.TempDir()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	type lakeFile struct {
		path     string
		from, to time.Time
	}
	var files []lakeFile
	for h := range days * 24 {
		from := start.Add(time.Duration(h) * time.Hour)
		path := filepath.Join(dir, from.Format("dt=2006-01-02/hour=15"), "f.parquet")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		q := fmt.Sprintf(`COPY (SELECT TIMESTAMPTZ '%s' + to_microseconds(i * 1000) AS ts, 'h' || (i %% 50) AS host, (i %% 97) / 97.0 AS cpu,
			'%d-' || i AS _id, 0::INTEGER AS _partition, (%d + i)::BIGINT AS _offset,
			TIMESTAMPTZ '%s' + to_microseconds(i * 1000) AS _event_time, TIMESTAMPTZ '%s' AS _ingest_time
			FROM range(%d) t(i)) TO '%s' (FORMAT parquet, COMPRESSION zstd)`,
			from.Format(time.RFC3339), h, h*perFile, from.Format(time.RFC3339), from.Format(time.RFC3339), perFile, path)
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
		files = append(files, lakeFile{path, from, from.Add(time.Hour)})
	}
	p := &pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "m", Partitions: 1, Time: "ts", Schema: event.Schema{
		{Name: "ts", Type: event.TypeTimestamp}, {Name: "host", Type: event.TypeString}, {Name: "cpu", Type: event.TypeDouble}}}}}
	lake := func(ignoreSpan bool) func(context.Context, string, Span) ([]string, func(), error) {
		return func(_ context.Context, _ string, s Span) ([]string, func(), error) {
			var out []string
			for _, f := range files {
				if ignoreSpan || (s.From.IsZero() || f.to.After(s.From)) && (s.To.IsZero() || f.from.Before(s.To)) {
					out = append(out, f.path)
				}
			}
			return out, nil, nil
		}
	}
	engines := [2]*Engine{New(p, Options{Lake: lake(true)}), New(p, Options{Lake: lake(false)})}
	last := start.Add((days - 1) * 24 * time.Hour).Format("2006-01-02")
	req := Request{SQL: "SELECT count(*), count(DISTINCT host), round(sum(cpu), 3) FROM m WHERE _event_time >= '" + last + "'"}
	var took [2]time.Duration
	var want string
	n := 0
	for b.Loop() {
		for k, e := range engines {
			t0 := time.Now()
			res, err := e.Query(context.Background(), req)
			took[k] += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			got := fmt.Sprint(res.Rows)
			if want == "" {
				want = got
			}
			if got != want || !strings.HasPrefix(got, fmt.Sprintf("[[%d 50 ", 24*perFile)) {
				b.Fatalf("rows %s, want %s (%d rows of the last day)", got, want, 24*perFile)
			}
		}
		n++
	}
	b.ReportMetric(float64(took[0].Microseconds())/1000/float64(n), "ms/query-every-file")
	b.ReportMetric(float64(took[1].Microseconds())/1000/float64(n), "ms/query-bounded")
	b.ReportMetric(float64(took[0])/float64(took[1]), "ratio")
}
