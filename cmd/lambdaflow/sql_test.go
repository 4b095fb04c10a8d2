package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// sqlRows runs q and renders its rows one per line, values separated by
// " | ", nulls as NULL.
func sqlRows(t *testing.T, s *server, q string) (string, error) {
	t.Helper()
	res, err := s.client().SQL(context.Background(), api.SQLRequest{SQL: q})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, row := range res.Rows {
		for i, v := range row {
			if i > 0 {
				b.WriteString(" | ")
			}
			if v == nil {
				b.WriteString("NULL")
			} else {
				fmt.Fprint(&b, v)
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// sqlError runs q and returns the refusal's status and body.
func sqlError(t *testing.T, s *server, req api.SQLRequest) (int, api.Error) {
	t.Helper()
	_, err := s.client().SQL(context.Background(), req)
	var ce *client.Error
	if err == nil || !asClientError(err, &ce) {
		t.Fatalf("%q: want a refusal, got %v", req.SQL, err)
	}
	var body api.Error
	if jerr := json.Unmarshal(ce.Body, &body); jerr != nil {
		t.Fatalf("%q: error body %s: %v", req.SQL, ce.Body, jerr)
	}
	return ce.Status, body
}

func asClientError(err error, ce **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*ce = e
	}
	return ok
}

// TestSQLWhileRunning queries the lake, the views and the DuckDB sink's
// tables of a running pipeline, and checks what SQL must refuse.
func TestSQLWhileRunning(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, "testdata/sql.yaml", dataDir)
	post(t, s, "clicks", `{"id":"1","ts":"2026-03-01T10:00:05Z","page":"a","ms":10}
{"id":"2","ts":"2026-03-01T10:00:15Z","page":"a","ms":30}
{"id":"3","ts":"2026-03-01T10:00:25Z","page":"b","ms":5}
{"id":"4","ts":"2026-03-01T10:02:00Z","page":"a","ms":7}
`)
	const byPage = "SELECT page, count(*) AS n, sum(ms) AS total FROM clicks GROUP BY page ORDER BY page"
	waitFor(t, "the lake to hold the events", func() error {
		got, err := sqlRows(t, s, byPage)
		if err != nil {
			return err
		}
		if got != "a | 3 | 47\nb | 1 | 5\n" {
			return fmt.Errorf("rows:\n%s", got)
		}
		return nil
	})

	t.Run("lake", func(t *testing.T) {
		got, err := sqlRows(t, s, "SELECT _id, page, ms, ts, _event_time = ts AS same FROM lake.clicks ORDER BY _id")
		if err != nil {
			t.Fatal(err)
		}
		want := "1 | a | 10 | 2026-03-01T10:00:05Z | true\n2 | a | 30 | 2026-03-01T10:00:15Z | true\n" +
			"3 | b | 5 | 2026-03-01T10:00:25Z | true\n4 | a | 7 | 2026-03-01T10:02:00Z | true\n"
		if got != want {
			t.Fatalf("lake rows:\n%s\nwant:\n%s", got, want)
		}
		// Bounds on the event time read only the files of their span (a
		// day either side): none at all is an empty table.
		for q, want := range map[string]string{
			"SELECT count(*), min(_id) FROM clicks WHERE _event_time > '2026-03-05'":                                "0 | NULL\n",
			"SELECT _id FROM clicks WHERE ts >= '2026-03-01T10:00:10Z' AND _event_time < '2026-03-02' ORDER BY _id": "2\n3\n4\n",
		} {
			if got, err := sqlRows(t, s, q); err != nil || got != want {
				t.Fatalf("%s: %q, %v; want %q", q, got, err, want)
			}
		}
		// A bounded table has the types of the whole lake's.
		const types = "SELECT typeof(page), typeof(ms), typeof(ts), typeof(_id), typeof(_partition), typeof(_offset), typeof(_event_time), typeof(_ingest_time) FROM clicks"
		whole, err := sqlRows(t, s, types+" LIMIT 1")
		if err != nil || whole != "VARCHAR | BIGINT | TIMESTAMP WITH TIME ZONE | VARCHAR | INTEGER | BIGINT | TIMESTAMP WITH TIME ZONE | TIMESTAMP WITH TIME ZONE\n" {
			t.Fatalf("types: %q, %v", whole, err)
		}
		if got, err := sqlRows(t, s, types+" WHERE _event_time < '2026-03-02' LIMIT 1"); err != nil || got != whole {
			t.Fatalf("types, bounded: %q, %v", got, err)
		}
		// The query's database describes only the tables it named.
		if got, err := sqlRows(t, s, "SELECT table_schema || '.' || table_name FROM information_schema.tables, (SELECT count(*) FROM clicks) ORDER BY 1"); err != nil || got != "lake.clicks\n" {
			t.Fatalf("information_schema: %q %v", got, err)
		}
	})

	t.Run("views equal the query API", func(t *testing.T) {
		a := queryView(t, s, "per_page")
		var want strings.Builder
		for _, r := range a.Rows {
			fmt.Fprintf(&want, "%v | %v | %v | %v | %v | %v | %v\n", r["window_start"], r["page"], r["n"], r["total"], r["slowest"], r["layer"], r["final"])
		}
		got, err := sqlRows(t, s, "SELECT window_start, page, n, total, slowest, layer, final FROM per_page ORDER BY window_start, page")
		if err != nil {
			t.Fatal(err)
		}
		if got != want.String() || len(a.Rows) != 3 {
			t.Fatalf("views.per_page:\n%s\nGET /v1/views/per_page (%d rows):\n%s", got, len(a.Rows), want.String())
		}
	})

	t.Run("duckdb sink tables", func(t *testing.T) {
		waitFor(t, "the sink's rows", func() error {
			got, err := sqlRows(t, s, "SELECT count(*), sum(ms) FROM duck.clicks")
			if err != nil {
				return err
			}
			if got != "4 | 52\n" {
				return fmt.Errorf("duck.clicks: %s", got)
			}
			got, err = sqlRows(t, s, "SELECT window_start, page, n, total, final FROM duck.per_page WHERE window_start < '2026-03-01T10:01:00Z' ORDER BY page")
			if err != nil {
				return err
			}
			if got != "2026-03-01T10:00:00Z | a | 2 | 40 | true\n2026-03-01T10:00:00Z | b | 1 | 5 | true\n" {
				return fmt.Errorf("duck.per_page: %s", got)
			}
			return nil
		})
		// A join across the three kinds of table, over the closed windows
		// (the open one reaches the sink within its emit interval).
		got, err := sqlRows(t, s, `SELECT v.page, v.n, count(l._id) AS lake_rows
			FROM views.per_page v JOIN duck.per_page d USING (window_start, page) JOIN lake.clicks l
			ON l.page = v.page AND l.ts >= v.window_start AND l.ts < v.window_end
			WHERE v.final AND d.final
			GROUP BY v.page, v.n ORDER BY v.page, v.n`)
		if err != nil {
			t.Fatal(err)
		}
		if got != "a | 2 | 2\nb | 1 | 1\n" {
			t.Fatalf("join:\n%s", got)
		}
	})

	t.Run("bad SQL names the position", func(t *testing.T) {
		cases := []struct {
			sql       string
			line, col int
			contains  string
		}{
			{"SELECT *\nFORM clicks", 2, 6, "syntax error"},
			{"SELECT page,\n  nosuch\nFROM clicks", 2, 3, `"nosuch" not found`},
			{"SELECT * FROM clickz", 1, 15, `unknown table "clickz" (did you mean "clicks"?)`},
			{"SELECT * FROM duck.nope", 1, 15, `sink "duck" has no table "nope" (tables: clicks, per_page)`},
		}
		for _, c := range cases {
			status, body := sqlError(t, s, api.SQLRequest{SQL: c.sql})
			if status != 400 || body.Line != c.line || body.Column != c.col || !strings.Contains(body.Error, c.contains) {
				t.Errorf("%q: %d %+v, want 400 at line %d column %d containing %q", c.sql, status, body, c.line, c.col, c.contains)
			}
		}
	})

	t.Run("only reads", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "out.csv")
		refused := []string{
			"COPY (SELECT * FROM clicks) TO '" + outside + "'",
			"CREATE TABLE x AS SELECT * FROM clicks",
			"DELETE FROM duck.clicks",
			"SELECT 1; DELETE FROM duck.clicks",
			"ATTACH '" + filepath.Join(dataDir, "warehouse.duckdb") + "' AS w",
			"INSTALL httpfs",
			"LOAD httpfs",
			"PRAGMA version",
			"SET enable_external_access = true",
			"SELECT * FROM read_csv('/etc/passwd')",
			"SELECT * FROM read_text('" + filepath.Join(dataDir, "warehouse.duckdb") + "')",
			"SELECT * FROM glob('" + dataDir + "/*')",
		}
		for _, q := range refused {
			status, body := sqlError(t, s, api.SQLRequest{SQL: q})
			if status != 400 {
				t.Errorf("%q: %d %s, want 400", q, status, body.Error)
			}
		}
		if _, err := os.Stat(outside); !os.IsNotExist(err) {
			t.Errorf("COPY wrote %s: %v", outside, err)
		}
		if got, err := sqlRows(t, s, "SELECT count(*) FROM duck.clicks"); err != nil || got != "4\n" {
			t.Fatalf("duck.clicks after the refused writes: %q %v", got, err)
		}
	})

	t.Run("limits", func(t *testing.T) {
		cases := []struct {
			req   api.SQLRequest
			limit string
		}{
			{api.SQLRequest{SQL: "SELECT * FROM range(101)"}, "sql.max_rows"},
			{api.SQLRequest{SQL: "SELECT * FROM range(10)", MaxRows: 5}, "sql.max_rows"},
			{api.SQLRequest{SQL: "SELECT repeat('x', 200) AS s", MaxBytes: 100}, "sql.max_bytes"},
			{api.SQLRequest{SQL: "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b", Timeout: "200ms"}, "sql.timeout"},
		}
		for _, c := range cases {
			status, body := sqlError(t, s, c.req)
			if status != 422 || body.Limit != c.limit || !strings.Contains(body.Error, c.limit) {
				t.Errorf("%q: %d %+v, want 422 naming %s", c.req.SQL, status, body, c.limit)
			}
		}
		// A request cannot raise the pipeline's limit.
		if got, err := sqlRows(t, s, "SELECT count(*) FROM range(100)"); err != nil || got != "100\n" {
			t.Fatalf("within limits: %q %v", got, err)
		}
	})

	t.Run("formats", func(t *testing.T) {
		const q = "SELECT page, count(*) AS n FROM clicks GROUP BY page ORDER BY page"
		for f, want := range map[string]string{
			"csv":    "page,n\na,3\nb,1\n",
			"ndjson": `{"page":"a","n":3}` + "\n" + `{"page":"b","n":1}` + "\n",
			"json":   `{"columns":[{"name":"page","type":"VARCHAR"},{"name":"n","type":"BIGINT"}],"rows":[["a",3],["b",1]]}` + "\n",
		} {
			got, err := s.client().SQLAs(context.Background(), api.SQLRequest{SQL: q}, f)
			if err != nil || string(got) != want {
				t.Errorf("format %s: %v\n%s\nwant:\n%s", f, err, got, want)
			}
		}
		out, errOut, code := runCLI(t, "", "sql", "--addr", s.addr, "SELECT page, count(*) AS n, 1 AS one FROM clicks GROUP BY page ORDER BY page")
		if code != 0 {
			t.Fatalf("sql: exit %d\n%s", code, errOut)
		}
		const table = "page  n  one\n----  -  ---\na     3    1\nb     1    1\n(2 rows)\n"
		if out != table {
			t.Fatalf("sql table:\n%s\nwant:\n%s", out, table)
		}
		out, errOut, code = runCLI(t, "", "sql", "--addr", s.addr, "SELECT *\nFORM clicks")
		if code == 0 || !strings.Contains(errOut, "400") || !strings.Contains(errOut, "line 2, column 6: syntax error") {
			t.Fatalf("sql with bad SQL: exit %d\n%s%s", code, out, errOut)
		}
	})
	s.stop()
}

// TestSQLOnObjectStorage: with the lake on object storage, SQL reads the
// lake's files from local copies under data_dir/sql-lake, with exactly the
// rows published; a query whose WHERE bounds the event time copies only
// the files of its span (a day either side), so it runs where the whole
// lake is more than sql.lake_cache holds, and the whole lake is answered
// 422 naming it. A restart keeps the copies.
func TestSQLOnObjectStorage(t *testing.T) {
	srv := s3test.Env(t)
	env := []string{"LF_LAKE_URL=" + srv.URL(srv.Prefix(t, "lake")), "LF_TEST_S3_REGION=" + srv.Region}
	dataDir := t.TempDir()
	s := startServer(t, "testdata/sql-s3.yaml", dataDir, append(env, "LF_SQL_LAKE_CACHE=64MiB")...)
	post(t, s, "clicks", `{"id":"1","ts":"2026-03-01T10:00:05Z","page":"a","ms":10}
{"id":"2","ts":"2026-03-01T11:00:15Z","page":"a","ms":30}
{"id":"3","ts":"2026-03-01T12:00:25Z","page":"b","ms":5}
{"id":"4","ts":"2026-03-01T13:02:00Z","page":"a","ms":7}
{"id":"5","ts":"2026-03-05T09:00:00Z","page":"c","ms":1}
{"id":"6","ts":"2026-03-10T08:00:00Z","page":"c","ms":2}
{"id":"7","ts":"2026-03-10T09:30:00Z","page":"a","ms":3}
`)
	const all = "SELECT _id, page, ms, ts FROM lake.clicks ORDER BY _id"
	const want = "1 | a | 10 | 2026-03-01T10:00:05Z\n2 | a | 30 | 2026-03-01T11:00:15Z\n3 | b | 5 | 2026-03-01T12:00:25Z\n" +
		"4 | a | 7 | 2026-03-01T13:02:00Z\n5 | c | 1 | 2026-03-05T09:00:00Z\n6 | c | 2 | 2026-03-10T08:00:00Z\n7 | a | 3 | 2026-03-10T09:30:00Z\n"
	waitFor(t, "the lake to hold the events", func() error {
		got, err := sqlRows(t, s, all)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("rows:\n%s", got)
		}
		return nil
	})
	got, err := sqlRows(t, s, "SELECT page, count(*), sum(ms) FROM clicks GROUP BY page ORDER BY page")
	if err != nil || got != "a | 4 | 50\nb | 1 | 5\nc | 2 | 3\n" {
		t.Fatalf("by page: %q, %v", got, err)
	}
	// Copies of files replaced while the test waited stay until dropped:
	// a process with no copies yet (another machine's) copies the live
	// ones only.
	s.stop()
	copiesDir := filepath.Join(dataDir, "sql-lake")
	if err := os.RemoveAll(copiesDir); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, "testdata/sql-s3.yaml", dataDir, append(env, "LF_SQL_LAKE_CACHE=64MiB")...)
	if got, err := sqlRows(t, s, all); err != nil || got != want {
		t.Fatalf("on another machine: %q, %v", got, err)
	}
	copies := parquetUnder(t, filepath.Join(copiesDir, "clicks"))
	var total, tenth int64
	for _, f := range copies {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size()
		if strings.Contains(f, "dt=2026-03-10") {
			tenth += info.Size()
		}
	}
	if tenth == 0 || tenth >= total {
		t.Fatalf("local copies: %d bytes, %d of them of 2026-03-10", total, tenth)
	}
	s.stop()

	// A restart keeps the copies: the same query fetches none.
	s = startServer(t, "testdata/sql-s3.yaml", dataDir, append(env, "LF_SQL_LAKE_CACHE=64MiB")...)
	if got, err := sqlRows(t, s, all); err != nil || got != want {
		t.Fatalf("after a restart: %q, %v", got, err)
	}
	const reads = `lambdaflow_sql_lake_copies_reads_total{component="sql",pipeline="sql-s3",result="%s"}`
	if hits, misses := metricValue(t, s, fmt.Sprintf(reads, "hit")), metricValue(t, s, fmt.Sprintf(reads, "miss")); hits != fmt.Sprint(len(copies)) || misses != "" {
		t.Fatalf("after a restart: %s hits and %q misses, want %d hits and none", hits, misses, len(copies))
	}
	s.stop()
	if err := os.RemoveAll(copiesDir); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, "testdata/sql-s3.yaml", dataDir, append(env, fmt.Sprintf("LF_SQL_LAKE_CACHE=%d", total-1))...)
	status, body := sqlError(t, s, api.SQLRequest{SQL: all})
	if status != 422 || body.Limit != "sql.lake_cache" || !strings.Contains(body.Error, "the lake of topic clicks is") {
		t.Fatalf("the whole lake, over sql.lake_cache: %d %+v", status, body)
	}
	status, body = sqlError(t, s, api.SQLRequest{SQL: "SELECT count(*) FROM clicks WHERE _event_time > '2026-02-01'"})
	if status != 422 || body.Limit != "sql.lake_cache" || !strings.Contains(body.Error, "the query's time bounds leave") {
		t.Fatalf("bounds that leave the whole lake: %d %+v", status, body)
	}
	got, err = sqlRows(t, s, "SELECT _id, ts FROM clicks WHERE ts >= '2026-03-10' ORDER BY _id")
	if err != nil || got != "6 | 2026-03-10T08:00:00Z\n7 | 2026-03-10T09:30:00Z\n" {
		t.Fatalf("the 10th: %q, %v", got, err)
	}
	got, err = sqlRows(t, s, "SELECT count(*) FROM clicks WHERE _event_time < '2026-03-01T12:00:00Z' AND _event_time > '2026-02-27'")
	if err != nil || got != "2\n" {
		t.Fatalf("the 1st before 12:00: %q, %v", got, err)
	}
	for _, f := range parquetUnder(t, filepath.Join(dataDir, "sql-lake")) {
		if strings.Contains(f, "dt=2026-03-05") {
			t.Fatalf("copied for neither query: %s", f)
		}
	}
	if status, body := sqlError(t, s, api.SQLRequest{SQL: "SELECT nope FROM clicks WHERE ts >= '2026-03-10'"}); status != 400 {
		t.Fatalf("an unknown column: %d %+v", status, body)
	}
	// This process answered exactly these: two queries stopped by
	// sql.lake_cache, two answered (3 rows), one invalid.
	for series, want := range map[string]string{
		`lambdaflow_sql_queries_total{component="sql",pipeline="sql-s3",result="ok"}`:           "2",
		`lambdaflow_sql_queries_total{component="sql",pipeline="sql-s3",result="limit"}`:        "2",
		`lambdaflow_sql_queries_total{component="sql",pipeline="sql-s3",result="invalid"}`:      "1",
		`lambdaflow_sql_queries_total{component="sql",pipeline="sql-s3",result="error"}`:        "0",
		`lambdaflow_sql_limits_total{component="sql",limit="sql.lake_cache",pipeline="sql-s3"}`: "2",
		`lambdaflow_sql_limits_total{component="sql",limit="sql.timeout",pipeline="sql-s3"}`:    "0",
		`lambdaflow_sql_result_rows_total{component="sql",pipeline="sql-s3"}`:                   "3",
		`lambdaflow_sql_query_seconds_count{component="sql",pipeline="sql-s3"}`:                 "5",
	} {
		if got := metricValue(t, s, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	s.stop()

	// A field added since: the files a query's bounds leave all lack it,
	// and it reads as null.
	b, err := os.ReadFile("testdata/sql-s3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	added := writeFile(t, strings.Replace(string(b), "ms: long }", "ms: long, ref: string }", 1))
	s = startServer(t, added, dataDir, append(env, fmt.Sprintf("LF_SQL_LAKE_CACHE=%d", total-1))...)
	got, err = sqlRows(t, s, "SELECT _id, ref, typeof(ref) FROM clicks WHERE ts >= '2026-03-10' ORDER BY _id")
	if err != nil || got != "6 | NULL | VARCHAR\n7 | NULL | VARCHAR\n" {
		t.Fatalf("a field added since: %q, %v", got, err)
	}
	s.stop()
}

// TestSQLServeOnlyOnObjectStorage: a process of the serve role alone,
// with a data directory of its own (another machine), answers SQL over the
// lake another process writes to object storage.
func TestSQLServeOnlyOnObjectStorage(t *testing.T) {
	srv := s3test.Env(t)
	env := []string{"LF_LAKE_URL=" + srv.URL(srv.Prefix(t, "lake")), "LF_TEST_S3_REGION=" + srv.Region, "LF_SQL_LAKE_CACHE=64MiB"}
	// The roles share the log through the writer's embedded server.
	listen := testenv.FreeAddr(t)
	writer := launchArgs(t, []string{"--role", "ingest,batch"}, withLine(t, "testdata/sql-s3.yaml", "broker: { listen: "+listen+" }"), t.TempDir(), env...)
	waitReady(t, writer)
	serveDir := t.TempDir()
	serve := launchArgs(t, []string{"--role", "serve"}, withLine(t, "testdata/sql-s3.yaml", "broker: { url: nats://"+listen+" }"), serveDir, env...)
	waitReady(t, serve)
	post(t, writer, "clicks", `{"id":"1","ts":"2026-03-01T10:00:05Z","page":"a","ms":10}
{"id":"2","ts":"2026-03-02T11:00:15Z","page":"b","ms":30}
`)
	waitFor(t, "the serving process to read the lake", func() error {
		got, err := sqlRows(t, serve, "SELECT _id, page, ms, ts FROM lake.clicks ORDER BY _id")
		if err != nil {
			return err
		}
		if want := "1 | a | 10 | 2026-03-01T10:00:05Z\n2 | b | 30 | 2026-03-02T11:00:15Z\n"; got != want {
			return fmt.Errorf("rows:\n%s", got)
		}
		return nil
	})
	if copies := parquetUnder(t, filepath.Join(serveDir, "sql-lake", "clicks")); len(copies) == 0 {
		t.Fatal("no local copies in the serving process's data directory")
	}
	serve.stop()
	writer.stop()
}

// withLine writes a copy of the pipeline file with line added at its end
// and returns its path.
func withLine(t *testing.T, file, line string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, string(b)+line+"\n")
}

// writeFile writes a pipeline file of the test's own and returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// parquetUnder lists the Parquet files under dir.
func parquetUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// TestSQLReadScope: a token of topics[].read_tokens reads its topic's
// tables only; others are refused 403 naming the table and topic.
func TestSQLReadScope(t *testing.T) {
	s := startServer(t, "testdata/sqlauth.yaml", t.TempDir())
	ask := func(token, q string) (int, string) {
		t.Helper()
		_, err := client.New(s.addr, token, nil).SQL(context.Background(), api.SQLRequest{SQL: q})
		if err == nil {
			return 200, ""
		}
		var ce *client.Error
		if !asClientError(err, &ce) {
			t.Fatal(err)
		}
		return ce.Status, ce.Message
	}
	cases := []struct {
		token, sql string
		status     int
		message    string
	}{
		{"reads-all", "SELECT count(*) FROM clicks, orders", 200, ""},
		{"reads-clicks", "SELECT count(*) FROM clicks", 200, ""},
		{"reads-clicks", "SELECT count(*) FROM views.per_page", 200, ""},
		{"reads-clicks", "SELECT count(*) FROM clicks, orders", 403, `line 1, column 30: the token may not read table "lake.orders" (topic "orders")`},
		{"writes-clicks", "SELECT count(*) FROM clicks", 403, "but not read"},
		{"", "SELECT 1", 401, "a valid bearer token is required"},
	}
	for _, c := range cases {
		status, msg := ask(c.token, c.sql)
		if status != c.status || !strings.Contains(msg, c.message) {
			t.Errorf("token %q, %q: %d %q, want %d %q", c.token, c.sql, status, msg, c.status, c.message)
		}
	}
	s.stop()
}
