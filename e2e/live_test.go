package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver "duckdb"
	"github.com/gocql/gocql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// liveRow is what the test reads of a view's row in a sink's engine.
type liveRow struct {
	End           time.Time
	Events, Bytes int64
	Final         *bool // nil: null
}

func (r liveRow) String() string {
	final := "null"
	if r.Final != nil {
		final = fmt.Sprint(*r.Final)
	}
	return fmt.Sprintf("end %s events %d bytes %d final %s", r.End.UTC().Format(time.RFC3339), r.Events, r.Bytes, final)
}

// liveEngine reads one row of a view (by its one group-by column and
// window start) with the engine's own client; found is false when there
// is none.
type liveEngine struct {
	name string
	read func(ctx context.Context, view, groupCol, group string, start time.Time) (r liveRow, found bool, err error)
}

// liveWant is a row a view must hold in every engine, or must not (gone).
type liveWant struct {
	view, group string
	start, end  time.Time
	events, sum int64
	final, gone bool
	groupColumn string
	description string
}

func (w *liveWant) check(r liveRow, found bool) error {
	switch {
	case w.gone && found:
		return fmt.Errorf("%s: %s of %s at %s is still there: %s", w.description, w.view, w.group, w.start.Format(time.RFC3339), r)
	case w.gone:
		return nil
	case !found:
		return fmt.Errorf("%s: no row of %s for %s at %s", w.description, w.view, w.group, w.start.Format(time.RFC3339))
	case !r.End.Equal(w.end) || r.Events != w.events || r.Bytes != w.sum || r.Final == nil || *r.Final != w.final:
		return fmt.Errorf("%s: %s of %s at %s: %s, want end %s events %d bytes %d final %t", w.description, w.view, w.group,
			w.start.Format(time.RFC3339), r, w.end.UTC().Format(time.RFC3339), w.events, w.sum, w.final)
	}
	return nil
}

// waitLive polls every engine until each holds every wanted row, and fails
// t naming what an engine still lacked when the deadline passed. It logs
// how long each engine took from since.
func waitLive(t *testing.T, engines []liveEngine, since time.Time, within time.Duration, wants ...*liveWant) {
	t.Helper()
	deadline := since.Add(within)
	pending := map[string]error{}
	for _, e := range engines {
		pending[e.name] = errors.New("not read yet")
	}
	for {
		for _, e := range engines {
			if pending[e.name] == nil {
				continue
			}
			var failed error
			for _, w := range wants {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, found, err := e.read(ctx, w.view, w.groupColumn, w.group, w.start)
				cancel()
				if err == nil {
					err = w.check(r, found)
				}
				if err != nil {
					failed = err
					break
				}
			}
			pending[e.name] = failed
			if failed == nil {
				t.Logf("%s: %s after %v", e.name, wants[0].description, time.Since(since).Round(time.Millisecond))
			}
		}
		var missing []string
		for name, err := range pending {
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", name, err))
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v:\n  %s", within, strings.Join(missing, "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveViewsInEverySink runs a pipeline whose two views are delivered to
// PostgreSQL, Cassandra, OpenSearch and DuckDB, and checks with each
// engine's own client what a live dashboard sees: the current window's row,
// not final, within 2 s of the request that published its first event; its
// later value; a merged session's replaced row gone; the final rows, exact,
// once the watermark passes; a batch correction (a late event included)
// overwriting the final row. DuckDB's file is locked while the pipeline
// runs: the test reads it then through POST /v1/sql (the process's DuckDB
// on the sink's database), and with its own client once the process
// stopped.
func TestLiveViewsInEverySink(t *testing.T) {
	requireBinary(t)
	engines := liveEngines(t)
	duckPath := filepath.Join(t.TempDir(), "live.duckdb")
	t.Setenv("E2E_DUCKDB", duckPath)
	p := startT(t, "live", "live.yaml", "")
	// The DuckDB sink's file is locked by the running sink; its tables are
	// read live through the process's SQL endpoint (DuckDB's own engine),
	// and with DuckDB's own client once the process stopped.
	engines = append(engines, liveEngine{name: "duckdb (POST /v1/sql)", read: duckSQLRead(p)})

	// Event times: a window some minutes back (windows close with the
	// watermark, in event time, not on the clock).
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	ev := func(id, host, region string, at time.Duration, bytes int64) map[string]any {
		return map[string]any{"id": id, "ts": base.Add(at).Format(time.RFC3339Nano), "host": host, "region": region, "cpu": 0.25, "bytes": bytes}
	}
	// publish returns when it began: the times asked for count from the
	// request, ingest included.
	publish := func(events ...map[string]any) time.Time {
		t.Helper()
		at := time.Now()
		p.post(t, "metrics", events)
		return at
	}
	cpu := func(desc string, events, sum int64, final bool) *liveWant {
		return &liveWant{view: "live_cpu", groupColumn: "region", group: "eu", start: base, end: base.Add(time.Minute),
			events: events, sum: sum, final: final, description: desc}
	}
	session := func(desc string, start, end time.Duration, events, sum int64, final, gone bool) *liveWant {
		return &liveWant{view: "live_sessions", groupColumn: "host", group: "s1", start: base.Add(start), end: base.Add(end),
			events: events, sum: sum, final: final, gone: gone, description: desc}
	}

	// Each sink makes its tables (indices, templates) at its first write,
	// which takes an engine some seconds: a first event does that.
	at := publish(ev("warm", "w1", "warm", 0, 1))
	waitLive(t, engines, at, time.Minute,
		&liveWant{view: "live_cpu", groupColumn: "region", group: "warm", start: base, end: base.Add(time.Minute), events: 1, sum: 1, description: "the tables made"},
		&liveWant{view: "live_sessions", groupColumn: "host", group: "w1", start: base, end: base.Add(time.Minute), events: 1, sum: 1, description: "the tables made"})

	// The window's first event: its row is in every engine within 2 s.
	at = publish(ev("a", "h1", "eu", 5*time.Second, 100))
	waitLive(t, engines, at, 2*time.Second, cpu("the first event's open row", 1, 100, false))

	// A later event: the row's next value, at most one emit interval later.
	at = publish(ev("b", "h2", "eu", 20*time.Second, 50))
	waitLive(t, engines, at, 2*time.Second+1250*time.Millisecond, cpu("the second event's open row", 2, 150, false))

	// Two sessions of s1, then an event that bridges them (within the
	// view's lateness): the later session's row goes from every engine,
	// the merged one holds all three.
	at = publish(ev("s-a", "s1", "ss", 120*time.Second, 1), ev("s-b", "s1", "ss", 210*time.Second, 2))
	waitLive(t, engines, at, 2*time.Second,
		session("two open sessions", 120*time.Second, 180*time.Second, 1, 1, false, false),
		session("two open sessions", 210*time.Second, 270*time.Second, 1, 2, false, false))
	at = publish(ev("s-c", "s1", "ss", 175*time.Second, 4))
	waitLive(t, engines, at, 2*time.Second+1250*time.Millisecond,
		session("the merged session", 120*time.Second, 270*time.Second, 3, 7, false, false),
		session("the merged session", 210*time.Second, 0, 0, 0, false, true))

	// Events ten minutes on, in every partition, move the watermark past
	// both views' windows: final rows, exact.
	var closers []map[string]any
	for part := range partitions {
		closers = append(closers, ev(fmt.Sprint("z", part), hostOfPartition(part), "zz", 10*time.Minute, 1))
	}
	at = publish(closers...)
	waitLive(t, engines, at, 5*time.Second,
		cpu("the final rows", 2, 150, true),
		session("the final rows", 120*time.Second, 270*time.Second, 3, 7, true, false),
		session("the final rows", 210*time.Second, 0, 0, 0, false, true))

	// A late event: the speed layer leaves it out; the batch layer's
	// correction, once the lake holds it, overwrites the final row.
	publish(ev("late", "h3", "eu", 30*time.Second, 7))
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		lag, err := p.api.Lag(bg)
		if err != nil {
			return err
		}
		for _, l := range lag {
			if l.Consumer == "lake" && l.Lag != 0 {
				return fmt.Errorf("the lake on %s/%d: lag %d", l.Topic, l.Partition, l.Lag)
			}
		}
		return nil
	})
	job := got(p.api.Recompute(bg, "live_cpu", time.Time{}, time.Time{}))(t)
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		st := got(p.api.Job(bg, job))(t)
		if st.State != "succeeded" {
			return fmt.Errorf("job %s: %s %s", job, st.State, st.Error)
		}
		return nil
	})
	at = time.Now()
	waitLive(t, engines, at, 10*time.Second, cpu("the batch correction", 3, 157, true))

	// DuckDB, read once the process has stopped: the same rows.
	p.stop()
	duck := liveEngine{name: "duckdb", read: duckRead(t, duckPath)}
	waitLive(t, []liveEngine{duck}, time.Now(), 0,
		cpu("the batch correction", 3, 157, true),
		session("the final rows", 120*time.Second, 270*time.Second, 3, 7, true, false),
		session("the final rows", 210*time.Second, 0, 0, 0, false, true))
}

// hostOfPartition returns a host whose events go to partition part of the
// topic (keyed by host, partitions partitions, as the fixture's).
func hostOfPartition(part int) string {
	for i := 0; ; i++ {
		h := fmt.Sprintf("closer-%d", i)
		if (event{Host: h}).partition() == part {
			return h
		}
	}
}

// liveEngines points the pipeline's sinks (by environment variables) at
// namespaces of their own in the running PostgreSQL, Cassandra and
// OpenSearch, removed at the end, and returns a reader of each.
func liveEngines(t *testing.T) []liveEngine {
	dsn, hosts, osURL := os.Getenv("LF_TEST_POSTGRES_DSN"), os.Getenv("LF_TEST_CASSANDRA_HOSTS"), os.Getenv("LF_TEST_OPENSEARCH_URL")
	if dsn == "" || hosts == "" || osURL == "" {
		testenv.Missing(t, "no PostgreSQL, Cassandra or OpenSearch (deploy/dev/services.sh up, then eval \"$(deploy/dev/services.sh env)\")")
	}
	ctx := context.Background()
	// Names of this test alone, in every engine.
	tag := make([]byte, 6)
	rand.Read(tag)
	name := "live_" + hex.EncodeToString(tag)

	schema := name
	admin, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Setenv("E2E_PG_DSN", u.String())
	pg := liveEngine{name: "postgresql", read: func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
		var r liveRow
		err := admin.QueryRow(ctx, fmt.Sprintf(`SELECT window_end, events, bytes, final FROM %s.%s WHERE %s = $1 AND window_start = $2`,
			schema, view, col), group, start).Scan(&r.End, &r.Events, &r.Bytes, &r.Final)
		if errors.Is(err, pgx.ErrNoRows) {
			return r, false, nil
		}
		return r, err == nil, err
	}}

	keyspace := name
	t.Setenv("E2E_CASSANDRA", strings.Split(hosts, ",")[0])
	t.Setenv("E2E_KEYSPACE", keyspace)
	cluster := gocql.NewCluster(strings.Split(hosts, ",")...)
	cluster.ProtoVersion = 4 // gocql's v5 framing is not Cassandra 5's
	cluster.Consistency = gocql.One
	cluster.Timeout, cluster.ConnectTimeout = 10*time.Second, 10*time.Second
	sess, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("cassandra: %v", err)
	}
	t.Cleanup(func() {
		sess.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec()
		sess.Close()
	})
	cass := liveEngine{name: "cassandra", read: func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
		var r liveRow
		err := sess.Query(fmt.Sprintf(`SELECT window_end, events, bytes, final FROM %s.%s WHERE %s = ? AND window_start = ?`, keyspace, view, col),
			group, start).WithContext(ctx).Scan(&r.End, &r.Events, &r.Bytes, &r.Final)
		if errors.Is(err, gocql.ErrNotFound) {
			return r, false, nil
		}
		return r, err == nil, err
	}}

	prefix := name + "_"
	t.Setenv("E2E_OPENSEARCH", osURL)
	t.Setenv("E2E_INDEX", prefix)
	tr := &http.Transport{}
	es, err := elastic.NewClient(elastic.SetURL(osURL), elastic.SetSniff(false), elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		es.DeleteIndex(prefix + "*").Do(ctx)
		for _, view := range []string{"live_cpu", "live_sessions"} {
			es.IndexDeleteIndexTemplate(prefix + view).Do(ctx)
		}
		tr.CloseIdleConnections()
	})
	search := liveEngine{name: "opensearch", read: func(ctx context.Context, view, _, group string, start time.Time) (liveRow, bool, error) {
		// A view document's _id is its key as a JSON array, the start
		// with all six digits of microseconds. A GET by _id is
		// real-time: it does not wait for the index's refresh.
		id := fmt.Sprintf(`[%q,%q]`, group, start.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
		res, err := es.Get().Index(prefix + view).Id(id).Do(ctx)
		if elastic.IsNotFound(err) || (err == nil && !res.Found) {
			return liveRow{}, false, nil
		}
		if err != nil {
			return liveRow{}, false, err
		}
		var doc struct {
			End    time.Time `json:"window_end"`
			Events int64     `json:"events"`
			Bytes  int64     `json:"bytes"`
			Final  *bool     `json:"final"`
		}
		if err := json.Unmarshal(res.Source, &doc); err != nil {
			return liveRow{}, false, err
		}
		return liveRow{End: doc.End, Events: doc.Events, Bytes: doc.Bytes, Final: doc.Final}, true, nil
	}}
	return []liveEngine{pg, cass, search}
}

// duckSQLRead reads the DuckDB sink "warehouse" of a running pipeline
// through POST /v1/sql.
func duckSQLRead(p *process) func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
	return func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
		var r liveRow
		res, err := p.api.SQL(ctx, api.SQLRequest{SQL: fmt.Sprintf(
			`SELECT window_end, events, bytes, final FROM warehouse.%s WHERE %s = '%s' AND window_start = TIMESTAMPTZ '%s'`,
			view, col, group, start.UTC().Format(time.RFC3339Nano))})
		if err != nil {
			return r, false, err
		}
		if len(res.Rows) == 0 {
			return r, false, nil
		}
		if len(res.Rows) > 1 {
			return r, false, fmt.Errorf("%d rows for one key: %v", len(res.Rows), res.Rows)
		}
		row := res.Rows[0]
		end, ok := row[0].(string)
		if !ok {
			return r, false, fmt.Errorf("window_end %v (%T), want an RFC 3339 string", row[0], row[0])
		}
		if r.End, err = time.Parse(time.RFC3339Nano, end); err != nil {
			return r, false, err
		}
		// 64-bit integers travel as JSON strings, exact beyond 2^53.
		if r.Events, err = strconv.ParseInt(fmt.Sprint(row[1]), 10, 64); err != nil {
			return r, false, fmt.Errorf("events: %w", err)
		}
		if r.Bytes, err = strconv.ParseInt(fmt.Sprint(row[2]), 10, 64); err != nil {
			return r, false, fmt.Errorf("bytes: %w", err)
		}
		if f, ok := row[3].(bool); ok {
			r.Final = &f
		}
		return r, true, nil
	}
}

// duckRead reads the DuckDB file of a stopped pipeline.
func duckRead(t *testing.T, path string) func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func(ctx context.Context, view, col, group string, start time.Time) (liveRow, bool, error) {
		var r liveRow
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT window_end, events, bytes, final FROM %s WHERE %s = ? AND window_start = ?`, view, col),
			group, start).Scan(&r.End, &r.Events, &r.Bytes, &r.Final)
		if errors.Is(err, sql.ErrNoRows) {
			return r, false, nil
		}
		return r, err == nil, err
	}
}
