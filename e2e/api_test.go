package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// The API tests cover every endpoint the console and `top` read, with exact
// shapes and values after the shared process consumed the seeded events.

func TestAPIReadsNeedToken(t *testing.T) {
	p, _ := sharedPipeline(t)
	for _, path := range []string{"/v1/topics", "/v1/lag", "/v1/topics/metrics/events", "/v1/views", "/metrics"} {
		resp, body, err := p.do(http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s with a wrong token: %d %q, want 401 with WWW-Authenticate: Bearer", path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		var e struct {
			Error string `json:"error"`
		}
		if path != "/metrics" && (json.Unmarshal(body, &e) != nil || e.Error == "") {
			t.Errorf("GET %s 401 body %q: want {\"error\": …}", path, body)
		}
	}
	// Probes and the console page are open: the page asks for the token.
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, _, err := p.do(http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound {
			t.Errorf("GET %s: %d, want it open (the console is mounted with mux.Handle(\"/\", console.UI()))", path, resp.StatusCode)
		}
	}
}

func TestAPIIngestAnswers(t *testing.T) {
	_, f := sharedPipeline(t)
	next := map[int]int64{}
	for i, e := range f.events {
		want := [2]int64{int64(e.partition()), next[e.partition()]}
		next[e.partition()]++
		if f.offsets[i] != want {
			t.Errorf("event %s (host %s): partition, offset = %v, want %v (FNV-1a of the key, offsets from 0)", e.ID, e.Host, f.offsets[i], want)
		}
	}
}

func TestAPITopics(t *testing.T) {
	p, f := sharedPipeline(t)
	var raw map[string][]map[string]json.RawMessage
	got(0, p.api.Get(bg, "/v1/topics", nil, &raw))(t)
	var topic map[string]json.RawMessage
	for _, tp := range raw["topics"] {
		if string(tp["name"]) == `"metrics"` {
			topic = tp
		}
	}
	if topic == nil {
		t.Fatalf("GET /v1/topics has no topic metrics: %v", raw)
	}
	assertKeys(t, "topic", topic, "name", "events", "bytes", "partitions", "retention", "max_bytes", "replicas", "kind", "publishable")
	var parts []map[string]json.RawMessage
	json.Unmarshal(topic["partitions"], &parts)
	for _, pt := range parts {
		assertKeys(t, "partition", pt, "partition", "first_offset", "last_offset", "end_offset", "bytes", "entries")
	}

	topics := got(p.api.Topics(bg))(t)
	// The seeded topic takes events; the view's rows and the sinks' dead
	// letters say why they do not.
	kinds := map[string]string{}
	for _, tp := range topics {
		kinds[tp.Name] = fmt.Sprintf("%s %v %s", tp.Kind, tp.Publishable, tp.Refusal)
	}
	wantKinds := map[string]string{
		seedTopic: "events true ",
		seedView: "view false topic \"cpu_by_region\" holds the rows of view cpu_by_region, which the speed and batch layers write; " +
			"publish to its source topic \"metrics\" instead",
		seedView + "_partials": "view_partials false topic \"cpu_by_region_partials\" holds the partial states of view cpu_by_region, " +
			"which the speed layer writes and merges; publish to its source topic \"metrics\" instead",
		"warehouse_dlq": "dead_letters false topic \"warehouse_dlq\" holds the dead letters of sink warehouse, which the sink writes; " +
			"replay them with POST /v1/sinks/warehouse/dlq/replay (lambdaflow dlq replay warehouse)",
		"archive_dlq": "dead_letters false topic \"archive_dlq\" holds the dead letters of sink archive, which the sink writes; " +
			"replay them with POST /v1/sinks/archive/dlq/replay (lambdaflow dlq replay archive)",
	}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("topic kinds %q, want %q", kinds, wantKinds)
	}
	ends := f.endOffsets()
	for _, tp := range topics {
		if tp.Name != seedTopic {
			continue
		}
		if tp.Events != int64(len(f.events)) || tp.Retention != "168h0m0s" || tp.Replicas != 1 || len(tp.Partitions) != partitions || tp.Bytes <= 0 {
			t.Errorf("topic: events %d, retention %s, replicas %d, %d partitions, bytes %d; want %d, 168h0m0s, 1, %d, > 0",
				tp.Events, tp.Retention, tp.Replicas, len(tp.Partitions), tp.Bytes, len(f.events), partitions)
		}
		for _, pt := range tp.Partitions {
			end := ends[pt.Partition]
			first, last := int64(0), end-1
			if end == 0 {
				first, last = -1, -1
			}
			if pt.EndOffset != end || pt.FirstOffset != first || pt.LastOffset != last {
				t.Errorf("partition %d: first, last, end = %d, %d, %d; want %d, %d, %d", pt.Partition, pt.FirstOffset, pt.LastOffset, pt.EndOffset, first, last, end)
			}
			if end > 0 && (pt.Entries < 1 || pt.Bytes <= 0) {
				t.Errorf("partition %d: entries %d, bytes %d; want ≥ 1 and > 0", pt.Partition, pt.Entries, pt.Bytes)
			}
		}
	}
}

func TestAPILag(t *testing.T) {
	p, f := sharedPipeline(t)
	var raw map[string][]map[string]json.RawMessage
	got(0, p.api.Get(bg, "/v1/lag", nil, &raw))(t)
	if raw["consumers"] == nil {
		t.Fatalf("GET /v1/lag: no consumers list: %v", raw)
	}
	if len(raw["consumers"]) == 0 {
		t.Skip("GET /v1/lag lists no consumer: the speed, batch (lake) and sinks layers are not wired into `lambdaflow run` yet")
	}
	for _, c := range raw["consumers"] {
		assertKeys(t, "lag", c, "consumer", "topic", "partition", "offset", "end_offset", "lag", "lag_seconds",
			"event_time_lag_seconds", "read_offset", "read_lag", "read_lag_seconds")
	}
	lag := got(p.api.Lag(bg))(t)
	ends := f.endOffsets()
	oldest := map[int]time.Time{}
	for _, e := range f.events {
		if o, ok := oldest[e.partition()]; !ok || e.TS.Before(o) {
			oldest[e.partition()] = e.TS
		}
	}
	seen := map[string]int{}
	for _, l := range lag {
		if l.Topic != seedTopic {
			continue
		}
		seen[l.Consumer]++
		if l.EndOffset != ends[l.Partition] || l.Lag != l.EndOffset-l.Offset || l.ReadLag != l.EndOffset-l.ReadOffset || l.ReadOffset < l.Offset {
			t.Errorf("%s/%d: offset %d, read offset %d, end %d, lag %d, read lag %d; want end %d, lag = end − offset, read lag = end − read offset, read ≥ committed",
				l.Consumer, l.Partition, l.Offset, l.ReadOffset, l.EndOffset, l.Lag, l.ReadLag, ends[l.Partition])
		}
		switch {
		case l.Consumer == stuckSink:
			// Never delivered nor read: behind by the whole partition. Its
			// lag is the time since the seed was appended; its event-time
			// lag the age of the oldest event, minutes more.
			appended := time.Since(f.seededAt).Seconds()
			eventAge := time.Since(oldest[l.Partition]).Seconds()
			if l.Offset != 0 || l.ReadOffset != 0 || l.Lag == 0 ||
				math.Abs(l.LagSeconds-appended) > 15 || l.ReadLagSeconds != l.LagSeconds || math.Abs(l.EventTimeLagSeconds-eventAge) > 15 {
				t.Errorf("%s/%d: offset %d, read %d, lag_seconds %.1f, read_lag_seconds %.1f, event_time_lag_seconds %.1f; want 0, 0, about %.0f twice and about %.0f",
					l.Consumer, l.Partition, l.Offset, l.ReadOffset, l.LagSeconds, l.ReadLagSeconds, l.EventTimeLagSeconds, appended, eventAge)
			}
		case l.Lag != 0 || l.LagSeconds != 0 || l.EventTimeLagSeconds != 0 || l.ReadLag != 0 || l.ReadLagSeconds != 0:
			t.Errorf("%s/%d: lag %d (%.1f s, event time %.1f s), read lag %d (%.1f s) after catching up, want 0",
				l.Consumer, l.Partition, l.Lag, l.LagSeconds, l.EventTimeLagSeconds, l.ReadLag, l.ReadLagSeconds)
		}
	}
	for c, n := range seen {
		if n != partitions {
			t.Errorf("consumer %s: %d partitions of %s in /v1/lag, want %d", c, n, seedTopic, partitions)
		}
	}
	if f.speed && seen["speed."+seedView] == 0 {
		t.Errorf("no lag of speed.%s", seedView)
	}
}

func TestAPIMessageBrowser(t *testing.T) {
	p, f := sharedPipeline(t)
	path := "/v1/topics/" + seedTopic + "/events"
	part := f.events[0].partition()
	want := f.byPartition(part)
	browse := func(b client.Browse) api.Browse { t.Helper(); return got(p.api.Events(bg, seedTopic, b))(t) }

	// One partition from offset 0: its events in order, and where to go on.
	a := browse(client.Browse{Partition: &part, From: "0", Limit: 100})
	assertBrowsed(t, "from=0", a.Events, part, 0, want)
	if got := a.Next[strconv.Itoa(part)]; got != int64(len(want)) || len(a.Next) != 1 {
		t.Errorf("next = %v, want {%d: %d}", a.Next, part, len(want))
	}

	// Pages of two, continued with offset.P.
	first := browse(client.Browse{Partition: &part, From: "0", Limit: 2})
	assertBrowsed(t, "page 1", first.Events, part, 0, want[:2])
	second := browse(client.Browse{Partition: &part, Offsets: first.Next, Limit: 2})
	assertBrowsed(t, "page 2", second.Events, part, 2, want[2:4])

	// last=1 over all partitions: the newest event of each.
	last := browse(client.Browse{Last: 1})
	var got, exp []string
	for _, e := range last.Events {
		got = append(got, e.ID)
	}
	for q := 0; q < partitions; q++ {
		if evs := f.byPartition(q); len(evs) > 0 {
			exp = append(exp, evs[len(evs)-1].ID)
		}
	}
	sort.Strings(got)
	sort.Strings(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("last=1: ids %v, want %v", got, exp)
	}

	// By time: everything was ingested after seededAt, nothing after now.
	byTime := browse(client.Browse{Partition: &part, From: f.seededAt.Add(-time.Second).Format(time.RFC3339Nano)})
	assertBrowsed(t, "from=TIME", byTime.Events, part, 0, want)
	future := browse(client.Browse{Partition: &part, From: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if len(future.Events) != 0 {
		t.Errorf("from an hour ahead: %d events, want none", len(future.Events))
	}
	// The time is the ingest time, to the microsecond: from an event's
	// ingest_time it is in; a microsecond later it and every event ingested
	// with it are out, whatever their event times.
	all := browse(client.Browse{Partition: &part, From: "0", Limit: 1000})
	firstIngest, err := time.Parse(time.RFC3339Nano, all.Events[0].IngestTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []time.Time{firstIngest, firstIngest.Add(time.Microsecond)} {
		var wantIDs, gotIDs []string
		for _, e := range all.Events {
			if it, _ := time.Parse(time.RFC3339Nano, e.IngestTime); !it.Before(from) {
				wantIDs = append(wantIDs, e.ID)
			}
		}
		for _, e := range browse(client.Browse{Partition: &part, From: from.Format(time.RFC3339Nano), Limit: 1000}).Events {
			gotIDs = append(gotIDs, e.ID)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("from=%s (ingest time): ids %v, want %v", from.Format(time.RFC3339Nano), gotIDs, wantIDs)
		}
	}

	// NDJSON: the same records, one a line, as a download.
	resp, body, err := p.api.EventsNDJSON(bg, seedTopic, client.Browse{Partition: &part, From: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("format=ndjson: %d, Content-Type %q, Content-Disposition %q", resp.StatusCode, ct, resp.Header.Get("Content-Disposition"))
	}
	var lines []api.BrowsedEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var b api.BrowsedEvent
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		lines = append(lines, b)
	}
	if !reflect.DeepEqual(lines, a.Events) {
		t.Errorf("NDJSON records differ from the JSON answer:\n%v\n%v", lines, a.Events)
	}

	// Mistakes are named.
	for target, code := range map[string]int{
		path + "?limit=0":        http.StatusBadRequest,
		path + "?partition=9":    http.StatusBadRequest,
		path + "?from=yesterday": http.StatusBadRequest,
		path + "?from=0&last=1":  http.StatusBadRequest,
		"/v1/topics/nope/events": http.StatusNotFound,
	} {
		resp, body, err := p.do(http.MethodGet, target, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != code || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("GET %s: %d %s, want %d with an error", target, resp.StatusCode, body, code)
		}
	}
}

func assertBrowsed(t *testing.T, what string, events []api.BrowsedEvent, part int, from int64, want []event) {
	t.Helper()
	if len(events) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(events), len(want))
	}
	for i, b := range events {
		e := want[i]
		ts, _ := time.Parse(time.RFC3339, b.Time)
		if b.Partition != part || b.Offset != from+int64(i) || b.ID != e.ID || !ts.Equal(e.TS) || b.IngestTime == "" {
			t.Errorf("%s: event %d = %+v, want partition %d offset %d id %s time %s", what, i, b, part, from+int64(i), e.ID, e.TS)
		}
		wantEvent := map[string]any{"ts": e.TS.Format(time.RFC3339), "host": e.Host, "region": e.Region, "cpu": e.CPU, "bytes": float64(e.Bytes)}
		var body map[string]any
		if err := json.Unmarshal(b.Event, &body); err != nil || !reflect.DeepEqual(body, wantEvent) {
			t.Errorf("%s: event %d body %s, want %v", what, i, b.Event, wantEvent)
		}
	}
}

func TestAPIViews(t *testing.T) {
	p, f := sharedPipeline(t)
	var list struct {
		Views []map[string]json.RawMessage `json:"views"`
	}
	got(0, p.api.Get(bg, "/v1/views", nil, &list))(t)
	if len(list.Views) != 1 {
		t.Fatalf("GET /v1/views: %d views, want 1", len(list.Views))
	}
	assertKeys(t, "view", list.Views[0], "name", "from", "group_by", "window", "aggregates", "horizon", "drift_windows")
	var info struct {
		Name       string   `json:"name"`
		From       string   `json:"from"`
		GroupBy    []string `json:"group_by"`
		Window     string   `json:"window"`
		Aggregates []string `json:"aggregates"`
	}
	b, _ := json.Marshal(list.Views[0])
	json.Unmarshal(b, &info)
	if info.Name != seedView || info.From != seedTopic || !slices.Equal(info.GroupBy, []string{"region"}) || info.Window != "tumbling" ||
		!slices.Equal(info.Aggregates, []string{"events", "avg_cpu", "max_cpu", "bytes", "hosts"}) {
		t.Errorf("GET /v1/views: %+v", info)
	}

	v := got(p.view(nil))(t)
	if len(v.Rows) == 0 && !f.speed && v.Horizon == nil {
		t.Skip("the view has no rows: neither the speed nor the batch layer is wired into `lambdaflow run` yet")
	}
	assertRows(t, "all", v, f.windows())

	eu := got(p.view(url.Values{"region": {"eu"}}))(t)
	assertRows(t, "region=eu", eu, filterWindows(f.windows(), func(w window) bool { return w.Region == "eu" }))

	from, to := f.base.Add(2*time.Minute), f.base.Add(4*time.Minute)
	rng := got(p.view(url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}))(t)
	assertRows(t, "from..to", rng, filterWindows(f.windows(), func(w window) bool { return !w.Start.Before(from) && w.Start.Before(to) }))

	for q, code := range map[string]int{"host=web-1": 400, "from=soon": 400} {
		params, _ := url.ParseQuery(q)
		_, err := p.view(params)
		if client.StatusOf(err) != code {
			t.Errorf("GET /v1/views/%s?%s: %v, want %d", seedView, q, err, code)
		}
	}
	if _, err := p.api.Query(bg, "nope", nil, time.Time{}, time.Time{}); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("unknown view: %v, want 404", err)
	}
}

func filterWindows(ws []window, keep func(window) bool) []window {
	var out []window
	for _, w := range ws {
		if keep(w) {
			out = append(out, w)
		}
	}
	return out
}

// assertRows compares a view answer with the independently computed
// windows: every value, whichever layer answered it.
func assertRows(t *testing.T, what string, v viewAnswer, want []window) {
	t.Helper()
	if v.View != seedView {
		t.Errorf("%s: view %q", what, v.View)
	}
	got := map[string]viewRow{}
	for _, r := range v.Rows {
		got[r.WindowStart+"/"+r.Region] = r
		if r.Layer != "batch" && r.Layer != "speed" {
			t.Errorf("%s: row %s/%s layer %q", what, r.WindowStart, r.Region, r.Layer)
		}
	}
	if len(v.Rows) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(v.Rows), len(want))
	}
	for _, w := range want {
		k := w.Start.Format(time.RFC3339) + "/" + w.Region
		r, ok := got[k]
		if !ok {
			t.Errorf("%s: no row for window %s", what, k)
			continue
		}
		if r.WindowEnd != w.End.Format(time.RFC3339) || r.Events != w.Events || math.Abs(r.AvgCPU-w.AvgCPU) > 1e-9 ||
			r.MaxCPU != w.MaxCPU || r.Bytes != w.Bytes || r.Hosts != w.Hosts {
			t.Errorf("%s: window %s = %+v, want %+v", what, k, r, w)
		}
	}
}

func TestAPIRecompute(t *testing.T) {
	p, f := sharedPipeline(t)
	if !f.batch {
		t.Skip("GET /v1/jobs answers 404: the batch layer is not wired into `lambdaflow run` yet")
	}
	// Recomputing changes what the process does: the read token may not.
	err := p.api.Post(bg, "/v1/views/"+seedView+"/recompute", nil, "", nil, nil)
	if e, ok := errors.AsType[*client.Error](err); !ok || e.Status != http.StatusForbidden ||
		string(e.Body) != `{"error":"token may read but not administer (recompute, replay) (auth.admin_tokens)"}`+"\n" {
		t.Fatalf("POST recompute with the read token: %v, want 403", err)
	}
	var started api.JobStarted
	if err := p.admin.Post(bg, "/v1/views/"+seedView+"/recompute", nil, "", nil, &started); err != nil || started.Job == "" {
		t.Fatalf("POST recompute: %v %+v, want 2xx {\"job\": id}", err, started)
	}
	var job api.JobStatus
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		job = got(p.api.Job(bg, started.Job))(t)
		if job.State != "succeeded" {
			return fmt.Errorf("job %s: %s %s", job.ID, job.State, job.Error)
		}
		return nil
	})
	if job.ID != started.Job || job.View != seedView || job.Rows != int64(len(f.events)) || job.Done != job.Total {
		t.Errorf("job = %+v, want id %s, view %s, %d rows read, done = total", job, started.Job, seedView, len(f.events))
	}
	jobs := got(p.api.Jobs(bg))(t)
	if !slices.ContainsFunc(jobs, func(j api.JobStatus) bool { return j.ID == started.Job && j.State == "succeeded" }) {
		t.Errorf("GET /v1/jobs has no succeeded %s: %+v", started.Job, jobs)
	}
	// The batch layer's rows equal the independent computation, and so the
	// speed layer's: the two layers agree.
	v := got(p.view(nil))(t)
	if v.Horizon == nil {
		t.Fatal("no horizon after a successful batch run")
	}
	hz, _ := time.Parse(time.RFC3339Nano, *v.Horizon)
	for _, r := range v.Rows {
		end, _ := time.Parse(time.RFC3339, r.WindowEnd)
		if !end.After(hz) && r.Layer != "batch" {
			t.Errorf("window %s ends at or before the horizon %s but comes from %s", r.WindowStart, *v.Horizon, r.Layer)
		}
	}
	assertRows(t, "after recompute", v, f.windows())
}

func TestAPISinks(t *testing.T) {
	p, f := sharedPipeline(t)
	if !f.sinks {
		t.Skip("GET /v1/sinks answers 404: the sinks are not wired into `lambdaflow run` yet")
	}
	var raw struct {
		Sinks []map[string]json.RawMessage `json:"sinks"`
	}
	got(0, p.api.Get(bg, "/v1/sinks", nil, &raw))(t)
	sinks := got(p.api.Sinks(bg))(t)
	health := map[string]string{}
	for i, s := range sinks {
		keys := []string{"name", "type", "sources", "healthy"}
		if !s.Healthy {
			keys = append(keys, "error")
		}
		assertKeys(t, "sink", raw.Sinks[i], keys...)
		health[s.Name] = fmt.Sprintf("%s %v healthy=%v", s.Type, s.Sources, s.Healthy)
	}
	want := map[string]string{"warehouse": "duckdb [metrics] healthy=true", "archive": "postgres [metrics] healthy=false"}
	if !reflect.DeepEqual(health, want) {
		t.Errorf("GET /v1/sinks = %v, want %v", health, want)
	}
	var dlq map[string]json.RawMessage
	got(0, p.api.Get(bg, "/v1/sinks/warehouse/dlq", nil, &dlq))(t)
	if string(dlq["sink"]) != `"warehouse"` || string(dlq["dead_letters"]) != `[]` {
		t.Errorf("GET /v1/sinks/warehouse/dlq = %s %s, want warehouse and []", dlq["sink"], dlq["dead_letters"])
	}
	var rep map[string]any
	if err := p.api.Post(bg, "/v1/sinks/warehouse/dlq/replay", nil, "", nil, &rep); client.StatusOf(err) != http.StatusForbidden {
		t.Errorf("POST replay with the read token: %v, want 403", err)
	}
	if err := p.admin.Post(bg, "/v1/sinks/warehouse/dlq/replay", nil, "", nil, &rep); err != nil || rep["replayed"] != 0.0 || rep["failed"] != 0.0 {
		t.Errorf("POST replay: %v %v, want 200 with replayed 0, failed 0", err, rep)
	}
	if _, err := p.api.DeadLetters(bg, "nope", 0); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("unknown sink: %v, want 404", err)
	}
}

// assertKeys checks that a JSON object has exactly these keys: the HTTP
// contract is kept exactly.
func assertKeys(t *testing.T, what string, obj map[string]json.RawMessage, keys ...string) {
	t.Helper()
	var got []string
	for k := range obj {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
}

// TestAPIStats checks GET /v1/stats against the other endpoints and the
// seeded events: the log's numbers equal /v1/topics and /v1/lag, and every
// running part counts exactly what it did.
func TestAPIStats(t *testing.T) {
	p, f := sharedPipeline(t)
	waitConsumed(t, p)
	var raw map[string]json.RawMessage
	got(0, p.api.Get(bg, "/v1/stats", nil, &raw))(t)
	assertKeys(t, "stats", raw, "pipeline", "time", "started", "topics", "consumers", "ingest", "views", "batch", "sinks", "links")
	if string(raw["links"]) != "[]" {
		t.Errorf("links of a pipeline without sources: %s, want []", raw["links"])
	}

	before := got(p.api.Lag(bg))(t)
	st := got(p.api.Stats(bg))(t)
	topics := got(p.api.Topics(bg))(t)
	if st.Pipeline != "e2e" || time.Since(st.Time) > time.Minute || !st.Started.Before(f.seededAt) || st.Time.Sub(st.Started) > 10*time.Minute {
		t.Errorf("pipeline %q at %s, started %s; want started before the seed at %s", st.Pipeline, st.Time, st.Started, f.seededAt)
	}
	// Nothing moves once consumed: the log's numbers are /v1/topics' and
	// the positions /v1/lag's.
	if len(st.Topics) != len(topics) {
		t.Fatalf("%d topics, /v1/topics has %d", len(st.Topics), len(topics))
	}
	for i, tp := range topics {
		var ends []int64
		for _, pt := range tp.Partitions {
			ends = append(ends, pt.EndOffset)
		}
		s := st.Topics[i]
		if s.Name != tp.Name || s.Events != tp.Events || s.Bytes != tp.Bytes || !slices.Equal(s.EndOffsets, ends) {
			t.Errorf("topic %+v, /v1/topics says %s %d events %d bytes ends %v", s, tp.Name, tp.Events, tp.Bytes, ends)
		}
	}
	if !reflect.DeepEqual(positions(st.Consumers), positions(before)) {
		t.Errorf("consumers %v, /v1/lag says %v", positions(st.Consumers), positions(before))
	}

	// Every event of the seeded topic came through this process's ingest.
	var appended int64
	for _, tp := range topics {
		if tp.Name == seedTopic {
			appended = tp.EndOffset()
		}
	}
	if appended != int64(len(f.events)) {
		t.Fatalf("the log holds %d events of %s, the fixture posted %d", appended, seedTopic, len(f.events))
	}
	if st.Ingest == nil {
		t.Fatal("no ingest numbers, though ingest runs")
	}
	for _, it := range st.Ingest.Topics {
		if it.Topic == seedTopic && (it.Events != uint64(appended) || it.Bytes == 0) {
			t.Errorf("ingest into %s: %+v, want %d events", seedTopic, it, appended)
		}
	}
	if st.Ingest.Events < uint64(appended) || st.Ingest.Requests == 0 || st.Ingest.InFlight != 0 {
		t.Errorf("ingest %+v: want ≥ %d events, some requests, none in flight", *st.Ingest, appended)
	}
	if f.speed {
		if len(st.Views) != 1 || st.Views[0].View != seedView || st.Views[0].Events != uint64(appended) || st.Views[0].Watermark == nil {
			t.Errorf("views %+v, want %s with %d events and a watermark", st.Views, seedView, appended)
		}
	}
	if f.batch {
		jobs := got(p.api.Jobs(bg))(t)
		want := map[api.JobState]int{}
		for _, j := range jobs {
			want[j.State]++
		}
		if st.Batch == nil || !reflect.DeepEqual(st.Batch.Jobs, want) {
			t.Errorf("batch %+v, want jobs %v", st.Batch, want)
		}
		// The seed's hours: the periods of the topic's (hourly) lake.
		hours := map[time.Time]bool{}
		for _, e := range f.events {
			hours[e.TS.UTC().Truncate(time.Hour)] = true
		}
		for _, l := range st.Batch.Lake {
			// Compaction merges files: the files held are at most those
			// written, and at least one a period; the rows held are every
			// event, once.
			if l.Topic == seedTopic && f.lake && (l.Rows != uint64(appended) || l.Files == 0 || l.RowsHeld != appended ||
				l.PeriodsHeld != len(hours) || l.FilesHeld < l.PeriodsHeld || uint64(l.FilesHeld) > l.Files) {
				t.Errorf("lake of %s: %+v, want %d rows written and held, in %d periods", seedTopic, l, appended, len(hours))
			}
			// The lake keeps every event (no lake.retention): its oldest
			// period is the seed's first hour.
			if l.Topic == seedTopic && f.lake && (l.ExpiredFiles != 0 || l.OldestPeriod == nil || !l.OldestPeriod.Equal(earliest(hours))) {
				t.Errorf("lake of %s: %d files expired, oldest period %v; want none and %v", seedTopic, l.ExpiredFiles, l.OldestPeriod, earliest(hours))
			}
		}
	}
	if f.sinks {
		sinks := map[string]api.SinkStats{}
		for _, s := range st.Sinks {
			sinks[s.Sink] = s
		}
		// The warehouse wrote every event; the archive never reaches its
		// database.
		if w := sinks["warehouse"]; !w.Healthy || w.Rows != uint64(appended) || w.DeadLetters != 0 || w.Batches == 0 {
			t.Errorf("warehouse %+v, want healthy with %d rows", w, appended)
		}
		if a := sinks["archive"]; a.Healthy || a.Rows != 0 {
			t.Errorf("archive %+v, want failing with no rows", a)
		}
	}
}

// earliest is the first of a set of times.
func earliest(ts map[time.Time]bool) time.Time {
	var out time.Time
	for t := range ts {
		if out.IsZero() || t.Before(out) {
			out = t
		}
	}
	return out
}
