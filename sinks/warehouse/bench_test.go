package warehouse

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// Benchmark shape: benchRows events of a typical metrics topic in
// benchParts partitions, appended in entries of 1,000 (as ingest groups
// them), delivered from offset 0 with the default batch (5,000 rows).
const (
	benchRows  = 200_000
	benchParts = 4
)

func benchTopic() pipelines.Topic {
	return pipelines.Topic{Name: "metrics", Partitions: benchParts, Key: "host", Time: "ts",
		Retention: pipelines.Duration(time.Hour),
		Schema: event.Schema{
			{Name: "ts", Type: event.TypeTimestamp, Required: true},
			{Name: "host", Type: event.TypeString, Required: true},
			{Name: "region", Type: event.TypeString},
			{Name: "cpu", Type: event.TypeDouble},
			{Name: "bytes", Type: event.TypeLong},
		}}
}

func benchEvents(part int) []event.Event {
	n := benchRows / benchParts
	out := make([]event.Event, n)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := range n {
		k := part*n + i
		ts := base + int64(k)*1000
		out[i] = event.Event{ID: fmt.Sprintf("01JD%022d", k), Time: ts, Values: []event.Value{
			{I: ts, Valid: true},
			{S: fmt.Sprintf("host-%04d", k%1000), Valid: true},
			{S: []string{"eu-west", "us-east", "ap-south"}[k%3], Valid: true},
			{F: float64(k%10000) / 100, Valid: true},
			{I: int64(k) * 1500, Valid: true},
		}}
	}
	return out
}

// benchLog is a broker holding the benchmark's events, and its sinks.
type benchLog struct {
	p    *pipelines.Pipeline
	b    *broker.Broker
	rows [][]sinks.Row // per partition, for the baselines
}

func newBenchLog(b *testing.B, sinkType string, iterations int) *benchLog {
	b.Helper()
	p := &pipelines.Pipeline{
		Version: 1, Name: "bench", DataDir: b.TempDir(),
		Broker: pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Topics: []pipelines.Topic{benchTopic()},
	}
	// One sink per iteration: each reads from offset 0 as a new consumer.
	for i := range iterations {
		p.Sinks = append(p.Sinks, pipelines.Sink{Name: fmt.Sprintf("s%d", i), Type: sinkType, From: []string{"metrics"},
			Create: true, Batch: pipelines.SinkBatch{MaxRows: 5000, MaxWait: pipelines.Duration(500 * time.Millisecond), MaxRetries: 10}})
	}
	bp := *p
	bp.Topics, bp.Sinks = p.LogTopics(), nil
	ctx := context.Background()
	br, err := broker.Open(ctx, &bp, broker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	if err := br.EnsureTopics(ctx); err != nil {
		b.Fatal(err)
	}
	l := &benchLog{p: p, b: br}
	for part := range benchParts {
		evs := benchEvents(part)
		var rows []sinks.Row
		for i := 0; i < len(evs); i += 1000 {
			first, err := br.Append(ctx, "metrics", part, evs[i:i+1000])
			if err != nil {
				b.Fatal(err)
			}
			for j, ev := range evs[i : i+1000] {
				vals := append(append([]event.Value(nil), ev.Values...), event.Value{S: ev.ID, Valid: true})
				rows = append(rows, sinks.Row{Values: vals, Time: ev.Time, Source: "metrics", Partition: part, Offset: first + int64(j)})
			}
		}
		l.rows = append(l.rows, rows)
	}
	return l
}

// deliver runs sink i's runner until every event is committed and returns
// how long that took.
func (l *benchLog) deliver(b *testing.B, i int, target sinks.Target) time.Duration {
	b.Helper()
	spec := &l.p.Sinks[i]
	r, err := sinks.NewRunner(l.p, spec, target, l.b, sinks.Options{Logger: slog.New(slog.DiscardHandler), Owner: sinktest.Join(b, l.b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(ctx) }()
	for {
		all := true
		for part := range benchParts {
			off, _, err := l.b.Committed(ctx, sinks.ConsumerName(spec), "metrics", part)
			if err != nil {
				b.Fatal(err)
			}
			if off < benchRows/benchParts {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

func report(b *testing.B, sink, raw time.Duration, rawName string) {
	n := float64(benchRows * b.N)
	b.ReportMetric(n/sink.Seconds(), "rows/s")
	b.ReportMetric(n/raw.Seconds(), rawName+"_rows/s")
	b.ReportMetric(raw.Seconds()/sink.Seconds(), "x_vs_"+rawName)
	b.ReportMetric(0, "ns/op") // the figures above are the point, not the loop
}

// BenchmarkPostgresSink: rows/s from the log into PostgreSQL through the
// runner (read, batch, COPY to staging, upsert, commit), against raw pgx
// CopyFrom of the same rows into a table of the same shape in the same run.
func BenchmarkPostgresSink(b *testing.B) {
	dsn, admin := pgAdmin(b)
	l := newBenchLog(b, "postgres", b.N)
	table := sinks.TopicTable(&l.p.Topics[0])
	ctx := context.Background()
	var sinkTime, rawTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		spec := &l.p.Sinks[i]
		spec.Config = &PostgresConfig{DSN: pgSchema(b, dsn, admin)}
		pg, err := NewPostgres(ctx, spec, nil)
		if err != nil {
			b.Fatal(err)
		}
		sinkTime += l.deliver(b, i, pg)
		if got := pgCount(b, pg.pool, table.Name); got != benchRows {
			b.Fatalf("%d rows in the table, want %d", got, benchRows)
		}
		pg.Close()

		// Baseline: the same rows by raw CopyFrom, one COPY per partition
		// batch of 5,000 rows, into a fresh table with the same key.
		raw, err := pgxpool.New(ctx, pgSchema(b, dsn, admin))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := raw.Exec(ctx, createTableSQL(table, postgresType)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for _, rows := range l.rows {
			for j := 0; j < len(rows); j += 5000 {
				src := &pgCopySource{t: table, rows: rows[j : j+5000], idx: seq(5000), buf: make([]any, len(table.Columns))}
				if _, err := raw.CopyFrom(ctx, pgx.Identifier{table.Name}, columnNames(table), src); err != nil {
					b.Fatal(err)
				}
			}
		}
		rawTime += time.Since(start)
		raw.Close()
	}
	report(b, sinkTime, rawTime, "copy")
}

func pgCount(b *testing.B, pool *pgxpool.Pool, table string) int {
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+quote(table)).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// BenchmarkDuckDBSink: rows/s from the log into DuckDB through the runner,
// against the raw Appender of the same rows into a table of the same shape.
func BenchmarkDuckDBSink(b *testing.B) {
	l := newBenchLog(b, "duckdb", b.N)
	table := sinks.TopicTable(&l.p.Topics[0])
	ctx := context.Background()
	var sinkTime, rawTime time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		spec := &l.p.Sinks[i]
		d, err := NewDuckDB(ctx, spec, b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		sinkTime += l.deliver(b, i, d)
		var n int
		if err := d.DB().QueryRow("SELECT count(*) FROM metrics").Scan(&n); err != nil || n != benchRows {
			b.Fatalf("%d rows, %v; want %d", n, err, benchRows)
		}
		d.Close()

		db, err := sql.Open("duckdb", b.TempDir()+"/raw.duckdb")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(createTableSQL(table, DuckDBType)); err != nil {
			b.Fatal(err)
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		err = conn.Raw(func(dc any) error {
			for _, rows := range l.rows {
				for j := 0; j < len(rows); j += 5000 {
					app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", table.Name)
					if err != nil {
						return err
					}
					args := make([]driver.Value, len(table.Columns))
					for _, r := range rows[j : j+5000] {
						for c, col := range table.Columns {
							args[c] = goValue(col.Type, r.Values[c])
						}
						if err := app.AppendRow(args...); err != nil {
							return err
						}
					}
					if err := app.Close(); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(start)
		conn.Close()
		db.Close()
	}
	report(b, sinkTime, rawTime, "appender")
}
