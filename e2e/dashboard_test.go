package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/promtest"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// The Grafana dashboards: over the Prometheus metrics, and over the view
// tables of the ops-metrics example's PostgreSQL sink.
const (
	dashboardFile      = "../deploy/grafana/lambdaflow.json"
	viewsDashboardFile = "../deploy/grafana/views-postgres.json"
	// alertsFile holds the Prometheus alerting rules over the same metrics.
	alertsFile = "../deploy/prometheus/lambdaflow-alerts.yaml"
)

// metricName finds the metric names a PromQL expression uses; parsing
// loosely is enough, every name of ours starts with lambdaflow_.
var metricName = regexp.MustCompile(`\blambdaflow_[a-zA-Z0-9_]+`)

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource json.RawMessage          `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		RawSQL     string          `json:"rawSql"`
		RawQuery   bool            `json:"rawQuery"`
		Format     string          `json:"format"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// loadDashboard reads a dashboard file and lists its panels, those inside
// rows included.
func loadDashboard(t *testing.T, file string) (dashboard, []panel) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

// dashboardMetrics maps every metric name the dashboard's expressions and
// the alerting rules use to the panels and alerts that use it.
func dashboardMetrics(t *testing.T) map[string][]string {
	t.Helper()
	d, panels := loadDashboard(t, dashboardFile)
	out := map[string][]string{}
	for _, p := range panels {
		for _, tg := range p.Targets {
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				out[n] = append(out[n], p.Title)
			}
		}
	}
	for _, v := range d.Templating.List {
		for _, n := range metricName.FindAllString(string(v.Query), -1) {
			out[n] = append(out[n], "variable "+v.Name)
		}
	}
	for _, r := range loadAlerts(t) {
		for _, n := range metricName.FindAllString(r.Expr, -1) {
			out[n] = append(out[n], "alert "+r.Alert)
		}
	}
	return out
}

// alertRule is the part of an alerting rule the tests look at.
type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

// loadAlerts reads the alerting rules.
func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no rule", alertsFile)
	}
	return out
}

// TestDashboardShape checks what Grafana needs to import the dashboard and
// what makes it usable on any Prometheus: a data source variable, a pipeline
// variable every query filters on, unique panel ids, no overlapping panels.
func TestDashboardShape(t *testing.T) {
	d, panels := loadDashboard(t, dashboardFile)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["pipeline"] != "query" {
		t.Errorf("variables %v: want datasource (datasource) and pipeline (query)", vars)
	}
	if d.UID == "" {
		t.Error("no uid")
	}
	checkPanels(t, panels)
	selector := regexp.MustCompile(`lambdaflow_[a-zA-Z0-9_]+(\{[^}]*\})?`)
	for _, p := range panels {
		for _, tg := range p.Targets {
			for _, sel := range selector.FindAllString(tg.Expr, -1) {
				if !strings.Contains(sel, `pipeline=~"$pipeline"`) {
					t.Errorf("panel %q: %s does not filter on the pipeline variable", p.Title, sel)
				}
			}
		}
	}
}

// checkPanels checks what Grafana needs of a dashboard's panels: unique
// ids, places on the 24-column grid that do not overlap, and for every
// panel but rows a query on the ${datasource} variable.
func checkPanels(t *testing.T, panels []panel) {
	t.Helper()
	ids := map[int]string{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					y, x = 1<<30, 1<<30
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") {
			t.Errorf("panel %q: datasource %s, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}

// TestDashboardMetricsExist runs a pipeline with data flowing through every
// layer and checks that every metric the dashboard queries of the layers it
// runs is at /metrics (histograms through their _bucket, _sum and _count
// series). The Kafka listener's, the links' and a lake on object storage's
// are checked by the tests that run them (checkDashboardMetrics).
func TestDashboardMetricsExist(t *testing.T) {
	p := startT(t, "dashboard", "pipeline.yaml", "e2e-dashboard-token")

	layers := probeLayers(t, p)
	// Data through every path: accepted events (two rounds, so the lake
	// writes two files per partition and compacts them), a duplicate, a
	// rejected request, a late event, a query, a batch run, a SQL query.
	_, evs := newEvents(time.Now())
	var first, second []map[string]any
	for i, e := range evs {
		// Both rounds cover every host, so every partition gets two files.
		if i < len(evs)/2 {
			first = append(first, e.json())
		} else {
			second = append(second, e.json())
		}
	}
	p.post(t, seedTopic, first)
	p.post(t, seedTopic, first[:1]) // a duplicate
	if layers["batch"] {
		waitLake(t, p) // the first round's files are closed: the second opens new ones
	}
	p.post(t, seedTopic, second)
	if _, err := p.api.Publish(bg, seedTopic, []byte(`{"host":"x"}`), "application/json", ""); client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("invalid event: %v, want 400", err)
	}
	if layers["speed"] {
		// Older than every window the speed layer has closed: late.
		late := evs[0]
		late.ID, late.TS = "e2e-late", evs[0].TS.Add(-time.Hour)
		p.post(t, seedTopic, []map[string]any{late.json()})
	}
	got(p.view(nil))(t)
	if layers["batch"] {
		waitLake(t, p)
		if _, err := p.admin.Recompute(bg, seedView, time.Time{}, time.Time{}); err != nil {
			t.Fatalf("recompute: %v", err)
		}
	}
	if res := got(p.api.SQL(bg, api.SQLRequest{SQL: "SELECT count(*) FROM views." + seedView}))(t); len(res.Rows) != 1 {
		t.Fatalf("SQL: %+v, want one row", res)
	}
	// A member of an HTTP consumer group joins and reads.
	groupRead(t, p)
	var run []string
	for _, layer := range []string{"ingest", "log", "speed", "batch", "serving", "sinks", "sql", "http", "groups"} {
		if layers[layer] {
			run = append(run, layer)
		} else {
			t.Run(layer, func(t *testing.T) {
				t.Skipf("the %s layer is not wired into `lambdaflow run` yet; its dashboard metrics are not checked", layer)
			})
		}
	}
	checkDashboardMetrics(t, func() (map[string]*dto.MetricFamily, error) { return scrape(p.api) }, run...)
	t.Run("on Prometheus", func(t *testing.T) { dashboardOnPrometheus(t, p, run) })
}

// dashboardOnPrometheus has a real Prometheus scrape the process and
// evaluate the alerting rules, then sends every query of the dashboard as
// Grafana does (its variables set): each must be accepted, and each over
// metrics of the layers the process runs must answer series. Every rule
// must evaluate without error, and the sink that can never deliver
// (archive) must raise its alert.
func dashboardOnPrometheus(t *testing.T, p *process, layers []string) {
	running := map[string]bool{}
	for _, l := range layers {
		running[l] = true
	}
	srv := promtest.Start(t, promtest.Config{Targets: []promtest.Target{{URL: p.url, Token: p.token}}, RuleFiles: []string{alertsFile}})
	ctx := t.Context()
	// A rate needs two scrapes, and the dashboard's increases a little more.
	testenv.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		got, err := srv.Query(ctx, `count_over_time(lambdaflow_cluster_nodes{pipeline="e2e"}[1m])`)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Value < 3 {
			return fmt.Errorf("scrapes: %+v, want 3 at least", got)
		}
		return nil
	})
	d, panels := loadDashboard(t, dashboardFile)
	// The pipeline variable lists this pipeline: label_values(metric, label).
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z0-9_:]+)\s*,\s*([a-zA-Z0-9_]+)\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
		}
		got, err := srv.LabelValues(ctx, m[2], m[1])
		if err != nil || !slices.Contains(got, "e2e") {
			t.Errorf("variable %s: %s lists %v (%v), want e2e among them", v.Name, q.Query, got, err)
		}
	}
	queries := 0
	for _, pn := range panels {
		for _, tg := range pn.Targets {
			if tg.Expr == "" {
				continue
			}
			queries++
			expr := strings.NewReplacer(`$pipeline`, "e2e", `$__rate_interval`, "15s").Replace(tg.Expr)
			got, err := srv.Query(ctx, expr)
			if err != nil {
				t.Errorf("panel %q: %v", pn.Title, err)
				continue
			}
			ours := true
			for _, n := range metricName.FindAllString(expr, -1) {
				ours = ours && running[layerOf(n)]
			}
			if ours && len(got) == 0 {
				t.Errorf("panel %q: %s answered no series", pn.Title, expr)
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no query")
	}
	testenv.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		rules, err := srv.Rules(ctx)
		if err != nil {
			return err
		}
		if len(rules) != len(loadAlerts(t)) {
			return fmt.Errorf("prometheus has %d rules, the file %d", len(rules), len(loadAlerts(t)))
		}
		for _, r := range rules {
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: %s %s", r.Name, r.Health, r.LastError)
			}
		}
		return nil
	})
	testenv.CheckFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		alerts, err := srv.Alerts(ctx)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "LambdaflowSinkDown" && a.Labels["sink"] == "archive" && a.Labels["pipeline"] == "e2e" &&
				a.Annotations["summary"] == "Sink archive of pipeline e2e cannot write" {
				return nil
			}
		}
		return fmt.Errorf("alerts %+v: want LambdaflowSinkDown for sink archive", alerts)
	})
}

// groupRead has a member join an HTTP consumer group from the earliest
// event and read every event of the seed topic, exactly.
func groupRead(t *testing.T, p *process) {
	t.Helper()
	var held int64
	for _, tp := range got(p.api.Topics(bg))(t) {
		if tp.Name == seedTopic {
			held = tp.Events
		}
	}
	do := func(method, path, body string) []byte {
		t.Helper()
		req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s %v", method, path, resp.StatusCode, b, err)
		}
		return b
	}
	var m api.Membership
	if err := json.Unmarshal(do("POST", "/v1/groups/dashboard/members", `{"topics":["`+seedTopic+`"],"reset":"earliest"}`), &m); err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for n < held {
		lines := bytes.Count(do("GET", "/v1/groups/dashboard/members/"+m.Member+"/events?max=1000&wait=2s", ""), []byte("\n"))
		if lines == 0 {
			t.Fatalf("the group's member read %d of %d events, then nothing", n, held)
		}
		n += int64(lines)
	}
	if n != held {
		t.Fatalf("the group's member read %d events, the topic holds %d", n, held)
	}
}

// TestDashboardMetricsOnObjectStorage runs a pipeline whose lake is on
// object storage: a batch run reads it through lake.cache, a SQL query
// through local copies, and the dashboard's metrics of both are there.
func TestDashboardMetricsOnObjectStorage(t *testing.T) {
	requireBinary(t)
	srv := s3test.Env(t)
	path, err := filepath.Abs(filepath.Join("testdata", "s3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcessWith("s3", path, "", "", []string{"LF_LAKE_URL=" + srv.URL(srv.Prefix(t, "lake")), "LF_TEST_S3_REGION=" + srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	_, evs := newEvents(time.Now())
	var rows []map[string]any
	for _, e := range evs {
		rows = append(rows, e.json())
	}
	p.post(t, seedTopic, rows)
	waitLake(t, p)
	job := got(p.api.Recompute(bg, seedView, time.Time{}, time.Time{}))(t)
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if st := got(p.api.Job(bg, job))(t); st.State != "succeeded" {
			return fmt.Errorf("job %s: %s %s", job, st.State, st.Error)
		}
		return nil
	})
	res := got(p.api.SQL(bg, api.SQLRequest{SQL: "SELECT count(*) FROM lake." + seedTopic}))(t)
	if len(res.Rows) != 1 || fmt.Sprint(res.Rows[0][0]) != fmt.Sprint(len(evs)) {
		t.Fatalf("SQL over the lake: %v, want %d events", res.Rows, len(evs))
	}
	checkDashboardMetrics(t, func() (map[string]*dto.MetricFamily, error) { return scrape(p.api) }, "object storage")
}

// TestDashboardMetricsHaveLayers checks that every metric the dashboard
// queries belongs to a layer some test checks.
func TestDashboardMetricsHaveLayers(t *testing.T) {
	for name, panels := range dashboardMetrics(t) {
		if layerOf(name) == "" {
			t.Errorf("%s (used by %q) is of no layer dashboardLayers knows", name, panels)
		}
	}
}

// checkDashboardMetrics waits until every metric the dashboard queries of
// the given layers is at /metrics as read reads it (histograms through
// their _bucket, _sum and _count series), then reports per layer what is
// not.
func checkDashboardMetrics(t *testing.T, read func() (map[string]*dto.MetricFamily, error), layers ...string) {
	t.Helper()
	used := dashboardMetrics(t)
	want := map[string]bool{}
	for _, l := range layers {
		want[l] = true
	}
	var missing map[string][]string
	err := testenv.Poll(t.Context(), 60*time.Second, 500*time.Millisecond, func() error {
		mfs, err := read()
		if err != nil {
			return err
		}
		missing = map[string][]string{}
		for name := range used {
			if layer := layerOf(name); want[layer] && !exported(mfs, name) {
				missing[layer] = append(missing[layer], name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing at /metrics: %v", missing)
		}
		return nil
	})
	for _, layer := range layers {
		t.Run(layer, func(t *testing.T) {
			names := missing[layer]
			sort.Strings(names)
			for _, n := range names {
				t.Errorf("%s (used by %q) is not at /metrics", n, used[n])
			}
		})
	}
	if err != nil {
		t.Log(err)
	}
}

// waitLake waits until the lake writer has committed every event (its
// files are closed).
func waitLake(t *testing.T, p *process) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, l := range got(p.api.Lag(bg))(t) {
			if l.Consumer == "lake" && l.Lag > 0 {
				return fmt.Errorf("lake writer %d events behind on %s/%d", l.Lag, l.Topic, l.Partition)
			}
		}
		return nil
	})
}

// probeLayers finds which layers the process runs, by their endpoints and
// consumers.
func probeLayers(t *testing.T, p *process) map[string]bool {
	t.Helper()
	layers := map[string]bool{"ingest": true, "log": true, "serving": true, "sql": true, "http": true, "groups": true}
	if _, err := p.api.Jobs(bg); err == nil {
		layers["batch"] = true
	} else if !client.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := p.api.Sinks(bg); err == nil {
		layers["sinks"] = true
	} else if !client.IsNotFound(err) {
		t.Fatal(err)
	}
	// Consumers register as their layer starts.
	_ = testenv.Poll(t.Context(), 10*time.Second, 200*time.Millisecond, func() error {
		lag, err := p.api.Lag(bg)
		if err != nil {
			return err
		}
		for _, l := range lag {
			if strings.HasPrefix(l.Consumer, "speed.") {
				layers["speed"] = true
			}
		}
		if !layers["speed"] {
			return fmt.Errorf("no speed consumer")
		}
		return nil
	})
	return layers
}

// dashboardLayers are the parts of a process the dashboard's metrics come
// from, by name prefix, the first that matches: each is checked by a test
// that runs it (checkDashboardMetrics).
var dashboardLayers = []struct{ prefix, layer string }{
	{"lambdaflow_sql_lake_copies_", "object storage"},
	{"lambdaflow_lake_cache_", "object storage"},
	{"lambdaflow_ingest_", "ingest"},
	{"lambdaflow_log_", "log"},
	{"lambdaflow_consumer_", "log"},
	{"lambdaflow_cluster_", "log"},
	{"lambdaflow_speed_", "speed"},
	{"lambdaflow_lake_", "batch"},
	{"lambdaflow_batch_", "batch"},
	{"lambdaflow_serving_", "serving"},
	{"lambdaflow_view_", "serving"},
	{"lambdaflow_sink_", "sinks"},
	{"lambdaflow_sql_", "sql"},
	{"lambdaflow_http_", "http"},
	{"lambdaflow_kafka_", "kafka"},
	{"lambdaflow_mirror_", "mirror"},
	{"lambdaflow_groups_", "groups"},
}

// layerOf names the layer that exports a metric; "" for none.
func layerOf(name string) string {
	for _, l := range dashboardLayers {
		if strings.HasPrefix(name, l.prefix) {
			return l.layer
		}
	}
	return ""
}

// exported reports whether name is a family at /metrics, or a series of a
// histogram family (name_bucket, name_sum, name_count).
func exported(mfs map[string]*dto.MetricFamily, name string) bool {
	if mf, ok := mfs[name]; ok && len(mf.GetMetric()) > 0 {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if mf, ok := mfs[base]; ok && len(mf.GetMetric()) > 0 && (mf.GetType() == dto.MetricType_HISTOGRAM || (suffix != "_bucket" && mf.GetType() == dto.MetricType_SUMMARY)) {
				return true
			}
		}
	}
	return false
}

func scrape(c *client.Client) (map[string]*dto.MetricFamily, error) {
	body, err := c.Metrics(bg)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// TestMetricsLabelledByPipeline checks the process wraps every layer's
// metrics with the pipeline label, which the dashboard filters on.
func TestMetricsLabelledByPipeline(t *testing.T) {
	p, _ := sharedPipeline(t)
	mfs, err := scrape(p.api)
	if err != nil {
		t.Fatal(err)
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "lambdaflow_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || (lp.GetName() == "pipeline" && lp.GetValue() == "e2e")
			}
			if !ok {
				t.Errorf("%s%v has no pipeline=\"e2e\" label", name, m.GetLabel())
				break
			}
		}
	}
}
