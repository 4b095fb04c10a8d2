package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// The dashboards that read the sinks of the ops-metrics example: Grafana
// over its PostgreSQL table, OpenSearch Dashboards over its indices.
const (
	opsMetricsFile = "../pipelines/examples/ops-metrics.yaml"
	savedObjects   = "../deploy/opensearch-dashboards/ops-metrics.ndjson"
)

// opsEvents makes five minutes of events of five hosts in two regions, two
// a minute each, from base. CPU values are sixteenths, so that sums and
// averages are exact in binary and the expectations need no tolerance.
func opsEvents(base time.Time) []event {
	var out []event
	for m := range 5 {
		for h := 1; h <= 5; h++ {
			region := "eu"
			if h > 3 {
				region = "us"
			}
			for k := range 2 {
				out = append(out, event{
					ID: fmt.Sprintf("ops-%d-%d-%d", m, h, k), TS: base.Add(time.Duration(m)*time.Minute + time.Duration(5+30*k+h)*time.Second),
					Host: fmt.Sprintf("web-%d", h), Region: region,
					CPU: float64((m*7+h*3+k*5)%16) / 16, Bytes: int64(100*h + 10*m + k),
				})
			}
		}
	}
	return out
}

// TestDashboardsOnSinks runs the ops-metrics example with its sinks on the
// test's PostgreSQL and OpenSearch, seeds five minutes of metrics, and then
// runs what the dashboards in deploy/ run: every SQL query of the Grafana
// dashboard (macros and variables expanded as Grafana does) against
// PostgreSQL, every saved search and every visualization's aggregation of
// the OpenSearch Dashboards objects against OpenSearch. Each must return
// exactly the view's rows (and the topic's events), which the test computes
// from the events itself.
func TestDashboardsOnSinks(t *testing.T) {
	requireBinary(t)
	pgDSN, osURL := os.Getenv("LF_TEST_POSTGRES_DSN"), strings.TrimRight(os.Getenv("LF_TEST_OPENSEARCH_URL"), "/")
	if pgDSN == "" || osURL == "" {
		testenv.Missing(t, "no PostgreSQL or OpenSearch (deploy/dev/services.sh up, then eval \"$(deploy/dev/services.sh env)\")")
	}
	ctx := t.Context()
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections) // registered first, runs last

	// A schema and index names of this test alone.
	tag := make([]byte, 4)
	rand.Read(tag)
	schema := "ops_dash_" + hex.EncodeToString(tag)
	prefix := "ops-dash-" + hex.EncodeToString(tag) + "-"
	admin, err := pgx.Connect(ctx, pgDSN)
	if err != nil {
		testenv.Missing(t, "PostgreSQL does not answer: "+err.Error())
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	t.Cleanup(func() { osDo(t, hc, http.MethodDelete, osURL+"/"+prefix+"*", nil, nil) })
	dsn, err := withSearchPath(pgDSN, schema)
	if err != nil {
		t.Fatal(err)
	}

	file, _ := filepath.Abs(opsMetricsFile)
	p, err := startProcessWith("ops-metrics", file, "", "serving_store", []string{
		"WAREHOUSE_DSN=" + dsn, "ES_URL=" + osURL, "ES_INDEX_PREFIX=" + prefix,
		// No Cassandra here: the serving store sink stays down.
		"CASSANDRA_HOST=127.0.0.1:1", "CASSANDRA_KEYSPACE=" + strings.ReplaceAll(schema, "-", "_"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)

	// Five minutes of events ending five minutes ago, then one event per
	// host now: the watermark passes the five windows (lateness 30 s), which
	// become final and reach the sinks; the window of now stays open, and
	// its row reaches them too, not final.
	now := time.Now().UTC()
	base := now.Truncate(time.Minute).Add(-10 * time.Minute)
	from, to := base, base.Add(5*time.Minute)
	evs := opsEvents(base)
	var body []map[string]any
	for _, e := range evs {
		body = append(body, e.json())
	}
	p.post(t, "metrics", body)
	var fresh []event
	var freshBody []map[string]any
	for h := 1; h <= 5; h++ {
		e := event{ID: fmt.Sprintf("ops-now-%d", h), TS: now.Truncate(time.Second), Host: fmt.Sprintf("web-%d", h), Region: "eu", CPU: 0.5, Bytes: 1}
		fresh, freshBody = append(fresh, e), append(freshBody, e.json())
	}
	p.post(t, "metrics", freshBody)
	want := windowsOf(evs)
	if len(want) != 10 {
		t.Fatalf("%d expected windows, want 5 minutes × 2 regions", len(want))
	}
	open := windowsOf(fresh)
	// The dashboards are run over the final windows' range, and over the
	// open window's.
	ranges := []dashRange{
		{from: from, to: to, events: evs, final: want},
		{from: open[0].Start, to: open[0].End, events: fresh, open: open},
	}

	// The view answers the expected rows, final.
	testenv.CheckFor(t, 90*time.Second, 500*time.Millisecond, func() error {
		var rows []struct {
			WindowStart          time.Time `json:"window_start"`
			WindowEnd            time.Time `json:"window_end"`
			Region               string
			Events, Bytes, Hosts int64
			AvgCPU               float64 `json:"avg_cpu"`
			MaxCPU               float64 `json:"max_cpu"`
			P95CPU               float64 `json:"p95_cpu"`
			Final                bool
		}
		if _, err := p.api.QueryInto(bg, "cpu_by_region", nil, from, to, &rows); err != nil {
			return err
		}
		var got []window
		for _, r := range rows {
			if !r.Final {
				return fmt.Errorf("window %s %s not final yet", r.WindowStart, r.Region)
			}
			got = append(got, window{Start: r.WindowStart.UTC(), End: r.WindowEnd.UTC(), Region: r.Region, Events: r.Events,
				AvgCPU: r.AvgCPU, MaxCPU: r.MaxCPU, P95CPU: r.P95CPU, Bytes: r.Bytes, Hosts: r.Hosts})
		}
		sort.Slice(got, func(i, j int) bool {
			return got[i].Start.Before(got[j].Start) || got[i].Start.Equal(got[j].Start) && got[i].Region < got[j].Region
		})
		if !slices.Equal(got, want) {
			return fmt.Errorf("view rows\n%+v\nwant\n%+v", got, want)
		}
		return nil
	})

	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })
	testenv.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
		var n int
		if err := pg.QueryRow(ctx, "SELECT count(*) FROM cpu_by_region WHERE window_start >= $1 AND window_start < $2", from, to).Scan(&n); err != nil {
			return err
		}
		if n != len(want) {
			return fmt.Errorf("PostgreSQL has %d rows of the windows, want %d", n, len(want))
		}
		// The open window's row shows at once with the events of the
		// first entry read, then with all of them within an emit
		// interval.
		var events int64
		var final *bool
		if err := pg.QueryRow(ctx, "SELECT events, final FROM cpu_by_region WHERE window_start = $1 AND region = $2", open[0].Start, open[0].Region).Scan(&events, &final); err != nil {
			return fmt.Errorf("the open window's row: %w", err)
		}
		if events != open[0].Events || final == nil || *final {
			return fmt.Errorf("the open window's row has events %d, final %v; want %d, false", events, final, open[0].Events)
		}
		return nil
	})

	t.Run("grafana over PostgreSQL", func(t *testing.T) {
		runGrafanaQueries(t, pg, ranges)
	})
	t.Run("opensearch dashboards", func(t *testing.T) {
		index := func(title string) string { return prefix + title }
		testenv.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
			for title, n := range map[string]int{"cpu_by_region": len(want) + len(open), "metrics": len(evs) + len(fresh)} {
				var ans struct{ Count int }
				if err := osDo(t, hc, http.MethodGet, osURL+"/"+index(title)+"/_count", nil, &ans); err != nil {
					return err
				}
				if ans.Count != n {
					return fmt.Errorf("%s holds %d documents, want %d", index(title), ans.Count, n)
				}
			}
			var ans struct{ Count int }
			q := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": []any{
				map[string]any{"term": map[string]any{"window_start": open[0].Start.Format(time.RFC3339)}},
				map[string]any{"term": map[string]any{"events": open[0].Events}},
				map[string]any{"term": map[string]any{"final": false}},
			}}}}
			if err := osDo(t, hc, http.MethodPost, osURL+"/"+index("cpu_by_region")+"/_count", q, &ans); err != nil {
				return err
			}
			if ans.Count != 1 {
				return fmt.Errorf("%s holds %d documents of the open window with %d events, final false; want 1", index("cpu_by_region"), ans.Count, open[0].Events)
			}
			return nil
		})
		runSavedObjects(t, hc, osURL, index, ranges)
	})
}

// withSearchPath points a DSN's connections at schema.
func withSearchPath(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// grafanaMacro is $__timeFilter(column), $__timeFrom() or $__timeTo().
var grafanaMacro = regexp.MustCompile(`\$__(timeFilter|timeFrom|timeTo)\(([^)]*)\)`)

// grafanaSQL expands a PostgreSQL query as Grafana does before sending it:
// the time macros for the range [from, to] (timeFilter is BETWEEN, both
// ends in), and each variable's values quoted and comma-separated (a
// multi-value variable set to All has every value). Anything else that
// looks like a macro or variable is an error.
func grafanaSQL(sql string, from, to time.Time, vars map[string][]string) (string, error) {
	lit := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339) + "'" }
	out := grafanaMacro.ReplaceAllStringFunc(sql, func(m string) string {
		g := grafanaMacro.FindStringSubmatch(m)
		switch g[1] {
		case "timeFilter":
			return fmt.Sprintf("%s BETWEEN %s AND %s", strings.TrimSpace(g[2]), lit(from), lit(to))
		case "timeFrom":
			return lit(from)
		}
		return lit(to)
	})
	for name, vals := range vars {
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		out = strings.ReplaceAll(out, "$"+name, strings.Join(q, ","))
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("unexpanded macro or variable in %q", out)
	}
	return out, nil
}

// sqlRows runs a query and returns its rows, each value as text: numbers
// exactly (%v of int64, shortest float64 that round-trips), times in RFC 3339.
func sqlRows(ctx context.Context, conn *pgx.Conn, sql string) ([][]string, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = cell(v)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// cell is a value as sqlRows and the expectations write it.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case pgtype.Numeric:
		if i, err := x.Int64Value(); err == nil && i.Valid {
			return strconv.FormatInt(i.Int64, 10)
		}
		f, _ := x.Float64Value()
		return strconv.FormatFloat(f.Float64, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// dashRange is a time range the dashboards are run over: the events in it
// and the view's windows that start in it, final and open.
type dashRange struct {
	from, to    time.Time
	events      []event
	final, open []window
}

// shownWindow is a window as the view's table holds it: its values and
// whether it is final.
type shownWindow struct {
	window
	final bool
}

// shown lists the windows of r that the filter on final keeps (nil: both),
// by start, then region.
func (r dashRange) shown(final *bool) []shownWindow {
	var out []shownWindow
	if final == nil || *final {
		for _, w := range r.final {
			out = append(out, shownWindow{w, true})
		}
	}
	if final == nil || !*final {
		for _, w := range r.open {
			out = append(out, shownWindow{w, false})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Start.Before(out[j].Start) || out[i].Start.Equal(out[j].Start) && out[i].Region < out[j].Region
	})
	return out
}

// runGrafanaQueries runs every query of the views dashboard, the region
// variable's included, over each range with each setting of the final
// variable (all, final, open), and compares each with what the view's rows
// say.
func runGrafanaQueries(t *testing.T, pg *pgx.Conn, ranges []dashRange) {
	d, panels := loadDashboard(t, viewsDashboardFile)
	checkPanels(t, panels)
	if d.UID == "" {
		t.Error("no uid")
	}
	ctx := t.Context()
	regions := []string{}
	for _, r := range ranges {
		for _, w := range append(r.final, r.open...) {
			if !slices.Contains(regions, w.Region) {
				regions = append(regions, w.Region)
			}
		}
	}
	sort.Strings(regions)

	// The variables: the data source, the regions from the table, and
	// which windows (final, open) as the custom variable lists them.
	vars := map[string][]string{}
	var finals []string
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			if string(v.Query) != `"grafana-postgresql-datasource"` {
				t.Errorf("variable %s: query %s, want the PostgreSQL data source type", v.Name, v.Query)
			}
		case "query":
			var sql string
			json.Unmarshal(v.Query, &sql)
			got, err := sqlRows(ctx, pg, sql)
			if err != nil {
				t.Fatalf("variable %s: %s: %v", v.Name, sql, err)
			}
			var vals []string
			for _, r := range got {
				vals = append(vals, r[0])
			}
			if v.Name != "region" || !slices.Equal(vals, regions) {
				t.Errorf("variable %s = %v, want region = %v", v.Name, vals, regions)
			}
			vars[v.Name] = vals // "All"
		case "custom":
			// "text : value" pairs, comma-separated.
			var q string
			json.Unmarshal(v.Query, &q)
			var texts []string
			for _, opt := range strings.Split(q, ",") {
				text, val, _ := strings.Cut(opt, " : ")
				texts, finals = append(texts, strings.TrimSpace(text)), append(finals, strings.TrimSpace(val))
			}
			if v.Name != "final" || !slices.Equal(texts, []string{"final", "open"}) || !slices.Equal(finals, []string{"true", "false"}) {
				t.Errorf("variable %s: options %q, want final = final : true, open : false", v.Name, q)
			}
		default:
			t.Errorf("variable %s of type %s", v.Name, v.Type)
		}
	}
	yes, no := true, false
	for _, r := range ranges {
		for _, setting := range []struct {
			name  string
			vals  []string
			final *bool
		}{{"all", finals, nil}, {"final", []string{"true"}, &yes}, {"open", []string{"false"}, &no}} {
			vars["final"] = setting.vals
			what := fmt.Sprintf("%s windows from %s", setting.name, r.from.Format(time.TimeOnly))
			runGrafanaPanels(t, pg, panels, r.from, r.to, vars, r.shown(setting.final), what)
		}
	}
}

// runGrafanaPanels runs every panel's query over [from, to] with vars and
// compares them with what want, the windows shown, say.
func runGrafanaPanels(t *testing.T, pg *pgx.Conn, panels []panel, from, to time.Time, vars map[string][]string, want []shownWindow, what string) {
	t.Helper()
	ctx := t.Context()
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	i := func(x int64) string { return strconv.FormatInt(x, 10) }
	ts := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
	var events, bytes int64
	peakCPU := math.Inf(-1)
	for _, w := range want {
		events, bytes, peakCPU = events+w.Events, bytes+w.Bytes, max(peakCPU, w.MaxCPU)
	}
	peak := "null" // max over no rows
	if len(want) > 0 {
		peak = f(peakCPU)
	}
	series := func(value func(window) string) [][]string {
		var out [][]string
		for _, w := range want {
			out = append(out, []string{ts(w.Start), w.Region, value(w.window)})
		}
		return out
	}
	var table [][]string
	for _, w := range want {
		table = append(table, []string{ts(w.Start), ts(w.End), w.Region, i(w.Events), f(w.AvgCPU), f(w.MaxCPU), f(w.P95CPU), i(w.Bytes), i(w.Hosts), fmt.Sprint(w.final)})
	}
	// Newest first, regions ascending within a window.
	sort.SliceStable(table, func(a, b int) bool { return table[a][0] > table[b][0] })
	expect := map[string][][]string{
		"Events":                       {{i(events)}},
		"Windows":                      {{i(int64(len(want)))}},
		"Peak CPU":                     {{peak}},
		"Bytes":                        {{i(bytes)}},
		"Events per minute, by region": series(func(w window) string { return i(w.Events) }),
		"Average CPU, by region":       series(func(w window) string { return f(w.AvgCPU) }),
		"p95 CPU, by region":           series(func(w window) string { return f(w.P95CPU) }),
		"Max CPU, by region":           series(func(w window) string { return f(w.MaxCPU) }),
		"Bytes per minute, by region":  series(func(w window) string { return i(w.Bytes) }),
		"Distinct hosts, by region":    series(func(w window) string { return i(w.Hosts) }),
		"Windows, newest first":        table,
	}
	ran := 0
	for _, pn := range panels {
		if pn.Type == "row" {
			continue
		}
		exp, ok := expect[pn.Title]
		if !ok {
			t.Errorf("panel %q (%s): the test has no expectation for it", pn.Title, pn.Type)
			continue
		}
		for _, tg := range pn.Targets {
			if !tg.RawQuery || tg.RawSQL == "" || !strings.Contains(string(tg.Datasource), "grafana-postgresql-datasource") {
				t.Errorf("panel %q: target %+v is not raw SQL on the PostgreSQL data source", pn.Title, tg)
				continue
			}
			sql, err := grafanaSQL(tg.RawSQL, from, to, vars)
			if err != nil {
				t.Errorf("panel %q: %v", pn.Title, err)
				continue
			}
			got, err := sqlRows(ctx, pg, sql)
			if err != nil {
				t.Errorf("panel %q: %s: %v", pn.Title, sql, err)
				continue
			}
			ran++
			if !slices.EqualFunc(got, exp, slices.Equal) {
				t.Errorf("panel %q, %s: %s\ngot  %v\nwant %v", pn.Title, what, sql, got, exp)
			}
			// A time series panel's rows are time, metric, value.
			if tg.Format == "time_series" && len(got) > 0 && len(got[0]) != 3 {
				t.Errorf("panel %q: time series rows of %d columns", pn.Title, len(got[0]))
			}
		}
	}
	if ran != len(expect) {
		t.Errorf("%s: %d queries ran, the test expects %d", what, ran, len(expect))
	}
}

// osDo sends a JSON request to OpenSearch and decodes a 2xx answer into out
// (when not nil).
func osDo(t *testing.T, hc *http.Client, method, url string, body, out any) error {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(out)
}

// savedObject is one line of an OpenSearch Dashboards saved objects file.
type savedObject struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Attributes json.RawMessage `json:"attributes"`
	References []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"references"`
}

// searchSource is the searchSourceJSON of a saved search or visualization.
type searchSource struct {
	Query struct {
		Query    string `json:"query"`
		Language string `json:"language"`
	} `json:"query"`
	Filter       []json.RawMessage `json:"filter"`
	IndexRefName string            `json:"indexRefName"`
}

// osValue is a value of a document or an aggregation as the expectations
// write it (see cell): dates in RFC 3339, numbers exactly.
func osValue(v any) string {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return strconv.FormatFloat(f, 'g', -1, 64)
	case string:
		if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
		return x
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// pattern is an index pattern of the saved objects: its title and time
// field.
type pattern struct{ title, timeField string }

// runSavedObjects checks the saved objects against the real indices (each
// index pattern's fields are the mapping's) and runs every saved search and
// every visualization's aggregation over each range on OpenSearch, as
// OpenSearch Dashboards sends them (filters included), comparing the
// answers with the events and the view's rows. index maps an index
// pattern's title to the index the test's sink wrote.
func runSavedObjects(t *testing.T, hc *http.Client, osURL string, index func(string) string, ranges []dashRange) {
	data, err := os.ReadFile(savedObjects)
	if err != nil {
		t.Fatal(err)
	}
	var objs []savedObject
	byID := map[string]savedObject{}
	for n, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var o savedObject
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("%s:%d: %v", savedObjects, n+1, err)
		}
		if _, dup := byID[o.ID]; dup {
			t.Errorf("%s: id %s twice", savedObjects, o.ID)
		}
		objs = append(objs, o)
		byID[o.ID] = o
	}
	// Every reference resolves, to an object of its type.
	for _, o := range objs {
		for _, r := range o.References {
			if target, ok := byID[r.ID]; !ok || target.Type != r.Type {
				t.Errorf("%s %s: reference %s to %s %s, which the file lacks", o.Type, o.ID, r.Name, r.Type, r.ID)
			}
		}
	}
	patterns := map[string]pattern{}
	for _, o := range objs {
		if o.Type != "index-pattern" {
			continue
		}
		var a struct {
			Title, TimeFieldName string
			Fields               string
		}
		json.Unmarshal(o.Attributes, &a)
		patterns[o.ID] = pattern{a.Title, a.TimeFieldName}
		var fields []struct {
			Name, Type string
			EsTypes    []string
		}
		if err := json.Unmarshal([]byte(a.Fields), &fields); err != nil {
			t.Errorf("index pattern %s: fields: %v", o.ID, err)
			continue
		}
		var mapping map[string]struct {
			Mappings struct {
				Properties map[string]struct{ Type string }
			}
		}
		if err := osDo(t, hc, http.MethodGet, osURL+"/"+index(a.Title)+"/_mapping", nil, &mapping); err != nil {
			t.Errorf("index pattern %s: %v", o.ID, err)
			continue
		}
		real := map[string]string{}
		for _, m := range mapping {
			for name, p := range m.Mappings.Properties {
				real[name] = p.Type
			}
		}
		kind := map[string]string{"date": "date", "keyword": "string", "long": "number", "integer": "number", "double": "number", "boolean": "boolean"}
		listed := map[string]string{}
		for _, fl := range fields {
			if strings.HasPrefix(fl.Name, "_") {
				continue
			}
			listed[fl.Name] = fl.Type
			if len(fl.EsTypes) != 1 || fl.EsTypes[0] != real[fl.Name] || kind[real[fl.Name]] != fl.Type {
				t.Errorf("index pattern %s: field %s is %s %v; the index maps it as %q", o.ID, fl.Name, fl.Type, fl.EsTypes, real[fl.Name])
			}
		}
		for name := range real {
			if _, ok := listed[name]; !ok {
				t.Errorf("index pattern %s lacks field %s of the index", o.ID, name)
			}
		}
		if real[a.TimeFieldName] != "date" {
			t.Errorf("index pattern %s: time field %s is %q in the index", o.ID, a.TimeFieldName, real[a.TimeFieldName])
		}
	}

	// The source of a saved search or visualization: its index pattern and
	// the query OpenSearch Dashboards sends for the time range, with the
	// object's filters.
	source := func(o savedObject, from, to time.Time) (pattern, map[string]any, bool) {
		var a struct {
			Meta struct {
				SearchSourceJSON string `json:"searchSourceJSON"`
			} `json:"kibanaSavedObjectMeta"`
		}
		json.Unmarshal(o.Attributes, &a)
		var src searchSource
		if err := json.Unmarshal([]byte(a.Meta.SearchSourceJSON), &src); err != nil {
			t.Errorf("%s %s: searchSourceJSON: %v", o.Type, o.ID, err)
			return pattern{}, nil, false
		}
		var pat pattern
		for _, r := range o.References {
			if r.Name == src.IndexRefName {
				pat = patterns[r.ID]
			}
		}
		if pat.title == "" || src.Query.Query != "" {
			t.Errorf("%s %s: index %q, query %q: the test runs saved objects over an index pattern with filters", o.Type, o.ID, pat.title, src.Query.Query)
			return pattern{}, nil, false
		}
		filters := []any{map[string]any{"range": map[string]any{pat.timeField: map[string]any{
			"gte": from.Format(time.RFC3339), "lte": to.Format(time.RFC3339), "format": "strict_date_optional_time"}}}}
		for k, raw := range src.Filter {
			var fl struct {
				Meta struct {
					Negate, Disabled bool
					IndexRefName     string
				}
				Query map[string]any
			}
			if err := json.Unmarshal(raw, &fl); err != nil || fl.Meta.Negate || fl.Meta.Disabled || len(fl.Query) == 0 {
				t.Errorf("%s %s: filter %d (%s) is not an enabled query filter (%v)", o.Type, o.ID, k, raw, err)
				return pattern{}, nil, false
			}
			filters = append(filters, fl.Query)
		}
		return pat, map[string]any{"bool": map[string]any{"filter": filters}}, true
	}
	searches, visualizations := 0, 0
	for _, r := range ranges {
		runSavedObjectsOver(t, hc, osURL, index, objs, source, r, &searches, &visualizations)
	}
	if want := 3 * len(ranges); searches != want || visualizations != 2*len(ranges) {
		t.Errorf("ran %d saved searches and %d visualizations, want %d and %d", searches, visualizations, want, 2*len(ranges))
	}

	// The dashboard shows them all.
	for _, o := range objs {
		if o.Type != "dashboard" {
			continue
		}
		var a struct{ PanelsJSON string }
		json.Unmarshal(o.Attributes, &a)
		var panels []struct {
			PanelRefName string
			GridData     struct{ X, Y, W, H int }
		}
		if err := json.Unmarshal([]byte(a.PanelsJSON), &panels); err != nil {
			t.Errorf("dashboard %s: panelsJSON: %v", o.ID, err)
		}
		shown := map[string]bool{}
		for _, pn := range panels {
			for _, r := range o.References {
				if r.Name == pn.PanelRefName {
					shown[r.ID] = true
				}
			}
		}
		for _, x := range objs {
			if (x.Type == "search" || x.Type == "visualization") && !shown[x.ID] {
				t.Errorf("dashboard %s does not show %s %s", o.ID, x.Type, x.ID)
			}
		}
	}
}

// runSavedObjectsOver runs the saved searches and visualizations of objs
// over r, their queries made by source, and counts those it ran.
func runSavedObjectsOver(t *testing.T, hc *http.Client, osURL string, index func(string) string, objs []savedObject,
	source func(o savedObject, from, to time.Time) (pattern, map[string]any, bool), r dashRange, searches, visualizations *int) {
	t.Helper()
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	i := func(x int64) string { return strconv.FormatInt(x, 10) }
	ts := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
	from, to := r.from, r.to
	evs := r.events
	when := "from " + from.Format(time.TimeOnly)

	// Saved searches: the documents in the range, in their sort order.
	wantDocs := map[string][][]string{}
	var metricDocs [][]string
	for _, e := range evs {
		if !e.TS.Before(from) && !e.TS.After(to) {
			metricDocs = append(metricDocs, []string{ts(e.TS), e.Host, e.Region, f(e.CPU), i(e.Bytes)})
		}
	}
	sort.Slice(metricDocs, func(a, b int) bool { return metricDocs[a][0] > metricDocs[b][0] })
	wantDocs["metrics"] = metricDocs
	viewDocs := func(final *bool) [][]string {
		var out [][]string
		for _, w := range r.shown(final) {
			out = append(out, []string{ts(w.Start), w.Region, i(w.Events), f(w.AvgCPU), f(w.MaxCPU), f(w.P95CPU), i(w.Bytes), i(w.Hosts), ts(w.End), fmt.Sprint(w.final)})
		}
		sort.SliceStable(out, func(a, b int) bool { return out[a][0] > out[b][0] })
		return out
	}
	yes := true
	wantDocs["cpu_by_region"] = viewDocs(nil)
	// The saved search filtered on final shows only final windows.
	wantSearch := map[string][][]string{"lambdaflow-cpu_by_region-final": viewDocs(&yes)}
	for _, o := range objs {
		if o.Type != "search" {
			continue
		}
		pat, q, ok := source(o, from, to)
		if !ok {
			continue
		}
		var a struct {
			Columns []string
			Sort    [][]string
		}
		json.Unmarshal(o.Attributes, &a)
		var sorts []any
		for _, s := range a.Sort {
			sorts = append(sorts, map[string]any{s[0]: map[string]any{"order": s[1]}})
		}
		var ans struct {
			Hits struct {
				Hits []struct {
					Source map[string]any `json:"_source"`
				}
			}
		}
		if err := osDo(t, hc, http.MethodPost, osURL+"/"+index(pat.title)+"/_search", map[string]any{"query": q, "sort": sorts, "size": 10000}, &ans); err != nil {
			t.Errorf("search %s: %v", o.ID, err)
			continue
		}
		*searches++
		// The sort field, then the columns, of each document.
		var got [][]string
		for _, h := range ans.Hits.Hits {
			row := []string{osValue(h.Source[a.Sort[0][0]])}
			for _, c := range a.Columns {
				row = append(row, osValue(h.Source[c]))
			}
			got = append(got, row)
		}
		// Rows of one window come in any order: the sort has no tie-break.
		for k := 1; k < len(got); k++ {
			if got[k][0] > got[k-1][0] {
				t.Errorf("search %s: not sorted by %v", o.ID, a.Sort)
				break
			}
		}
		sort.SliceStable(got, func(a, b int) bool { return got[a][0] > got[b][0] || got[a][0] == got[b][0] && got[a][1] < got[b][1] })
		exp, ok := wantSearch[o.ID]
		if !ok {
			exp = wantDocs[pat.title]
		}
		if !slices.EqualFunc(got, exp, slices.Equal) {
			t.Errorf("search %s on %s %s:\ngot  %v\nwant %v", o.ID, pat.title, when, got, exp)
		}
	}

	// Visualizations: their aggregations, buckets of a minute (what "auto"
	// gives a few minutes; the view's windows are a minute), one series
	// per region.
	for _, o := range objs {
		if o.Type != "visualization" {
			continue
		}
		pat, q, ok := source(o, from, to)
		if !ok {
			continue
		}
		var a struct{ VisState string }
		json.Unmarshal(o.Attributes, &a)
		var vis struct {
			Type string
			Aggs []struct {
				ID, Type, Schema string
				Enabled          bool
				Params           map[string]any
			}
		}
		if err := json.Unmarshal([]byte(a.VisState), &vis); err != nil {
			t.Errorf("visualization %s: visState: %v", o.ID, err)
			continue
		}
		metrics := map[string]any{}
		var metricField, metricType string
		var buckets []map[string]any
		var names []string
		for _, ag := range vis.Aggs {
			field, _ := ag.Params["field"].(string)
			switch {
			case !ag.Enabled:
			case ag.Schema == "metric" && slices.Contains([]string{"sum", "max", "min", "avg"}, ag.Type):
				metrics[ag.ID] = map[string]any{ag.Type: map[string]any{"field": field}}
				metricField, metricType = field, ag.Type
			case ag.Type == "date_histogram" && field == pat.timeField:
				buckets = append(buckets, map[string]any{"date_histogram": map[string]any{"field": field, "fixed_interval": "1m", "min_doc_count": 1}})
				names = append(names, ag.ID)
			case ag.Type == "terms":
				size, _ := ag.Params["size"].(float64)
				orderBy, _ := ag.Params["orderBy"].(string)
				order, _ := ag.Params["order"].(string)
				buckets = append(buckets, map[string]any{"terms": map[string]any{"field": field, "size": int(size), "order": map[string]any{orderBy: order}}})
				names = append(names, ag.ID)
			default:
				t.Errorf("visualization %s: aggregation %s %s (%s) the test cannot run", o.ID, ag.ID, ag.Type, ag.Schema)
			}
		}
		if len(metrics) != 1 || len(buckets) != 2 {
			t.Errorf("visualization %s: %d metrics, %d bucket aggregations; the test runs one metric over time and region", o.ID, len(metrics), len(buckets))
			continue
		}
		// Nested as listed: the time, then the series; the metric inside.
		buckets[1]["aggs"] = metrics
		buckets[0]["aggs"] = map[string]any{names[1]: buckets[1]}
		var ans struct {
			Aggregations map[string]struct {
				Buckets []map[string]any
			}
		}
		if err := osDo(t, hc, http.MethodPost, osURL+"/"+index(pat.title)+"/_search", map[string]any{"query": q, "size": 0, "aggs": map[string]any{names[0]: buckets[0]}}, &ans); err != nil {
			t.Errorf("visualization %s: %v", o.ID, err)
			continue
		}
		*visualizations++
		var got [][]string
		for _, tb := range ans.Aggregations[names[0]].Buckets {
			at := osValue(tb["key_as_string"])
			for _, rb := range tb[names[1]].(map[string]any)["buckets"].([]any) {
				b := rb.(map[string]any)
				var metricID string
				for id := range metrics {
					metricID = id
				}
				got = append(got, []string{at, osValue(b["key"]), osValue(b[metricID].(map[string]any)["value"])})
			}
		}
		sort.Slice(got, func(a, b int) bool { return got[a][0] < got[b][0] || got[a][0] == got[b][0] && got[a][1] < got[b][1] })
		var exp [][]string
		for _, w := range r.shown(nil) {
			v := map[string]string{"events": i(w.Events), "max_cpu": f(w.MaxCPU), "bytes": i(w.Bytes), "hosts": i(w.Hosts)}[metricField]
			if metricType != "sum" && metricType != "max" || v == "" {
				t.Errorf("visualization %s: %s(%s) has no expectation in the test", o.ID, metricType, metricField)
				break
			}
			exp = append(exp, []string{ts(w.Start), w.Region, v})
		}
		if !slices.EqualFunc(got, exp, slices.Equal) {
			t.Errorf("visualization %s (%s of %s per minute and region) %s:\ngot  %v\nwant %v", o.ID, metricType, metricField, when, got, exp)
		}
	}

}
