package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
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

	"github.com/lambdaflow/lambdaflow/internal/wait"
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
	p.getJSON(t, "/v1/topics", &raw)
	var topic map[string]json.RawMessage
	for _, tp := range raw["topics"] {
		if string(tp["name"]) == `"metrics"` {
			topic = tp
		}
	}
	if topic == nil {
		t.Fatalf("GET /v1/topics has no topic metrics: %v", raw)
	}
	assertKeys(t, "topic", topic, "name", "events", "bytes", "partitions", "retention", "max_bytes", "replicas")
	var parts []map[string]json.RawMessage
	json.Unmarshal(topic["partitions"], &parts)
	for _, pt := range parts {
		assertKeys(t, "partition", pt, "partition", "first_offset", "last_offset", "end_offset", "bytes", "entries")
	}

	var a topicsAnswer
	p.getJSON(t, "/v1/topics", &a)
	ends := f.endOffsets()
	for _, tp := range a.Topics {
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
	p.getJSON(t, "/v1/lag", &raw)
	if raw["consumers"] == nil {
		t.Fatalf("GET /v1/lag: no consumers list: %v", raw)
	}
	if len(raw["consumers"]) == 0 {
		t.Skip("GET /v1/lag lists no consumer: the speed, batch (lake) and sinks layers are not wired into `lambdaflow run` yet")
	}
	for _, c := range raw["consumers"] {
		assertKeys(t, "lag", c, "consumer", "topic", "partition", "offset", "end_offset", "lag", "lag_seconds")
	}
	var a lagAnswer
	p.getJSON(t, "/v1/lag", &a)
	ends := f.endOffsets()
	oldest := map[int]time.Time{}
	for _, e := range f.events {
		if o, ok := oldest[e.partition()]; !ok || e.TS.Before(o) {
			oldest[e.partition()] = e.TS
		}
	}
	seen := map[string]int{}
	for _, l := range a.Consumers {
		if l.Topic != seedTopic {
			continue
		}
		seen[l.Consumer]++
		if l.EndOffset != ends[l.Partition] || l.Lag != l.EndOffset-l.Offset {
			t.Errorf("%s/%d: offset %d, end %d, lag %d; want end %d and lag = end − offset", l.Consumer, l.Partition, l.Offset, l.EndOffset, l.Lag, ends[l.Partition])
		}
		switch {
		case l.Consumer == stuckSink:
			// Never delivered: behind by the whole partition, as old as its
			// oldest event.
			want := time.Since(oldest[l.Partition]).Seconds()
			if l.Offset != 0 || (l.Lag > 0 && math.Abs(l.LagSeconds-want) > 15) {
				t.Errorf("%s/%d: offset %d, lag_seconds %.1f; want 0 and about %.0f", l.Consumer, l.Partition, l.Offset, l.LagSeconds, want)
			}
		case l.Lag != 0 || l.LagSeconds != 0:
			t.Errorf("%s/%d: lag %d (%.1f s) after catching up, want 0", l.Consumer, l.Partition, l.Lag, l.LagSeconds)
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

	// One partition from offset 0: its events in order, and where to go on.
	var a browseAnswer
	p.getJSON(t, fmt.Sprintf("%s?partition=%d&from=0&limit=100", path, part), &a)
	assertBrowsed(t, "from=0", a.Events, part, 0, want)
	if got := a.Next[strconv.Itoa(part)]; got != int64(len(want)) || len(a.Next) != 1 {
		t.Errorf("next = %v, want {%d: %d}", a.Next, part, len(want))
	}

	// Pages of two, continued with offset.P.
	var first, second browseAnswer
	p.getJSON(t, fmt.Sprintf("%s?partition=%d&from=0&limit=2", path, part), &first)
	assertBrowsed(t, "page 1", first.Events, part, 0, want[:2])
	q := url.Values{"partition": {strconv.Itoa(part)}, "limit": {"2"}}
	for k, v := range first.Next {
		q.Set("offset."+k, strconv.FormatInt(v, 10))
	}
	p.getJSON(t, path+"?"+q.Encode(), &second)
	assertBrowsed(t, "page 2", second.Events, part, 2, want[2:4])

	// last=1 over all partitions: the newest event of each.
	var last browseAnswer
	p.getJSON(t, path+"?last=1", &last)
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
	var byTime, future browseAnswer
	p.getJSON(t, fmt.Sprintf("%s?partition=%d&from=%s", path, part, f.seededAt.Add(-time.Second).Format(time.RFC3339Nano)), &byTime)
	assertBrowsed(t, "from=TIME", byTime.Events, part, 0, want)
	p.getJSON(t, fmt.Sprintf("%s?partition=%d&from=%s", path, part, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), &future)
	if len(future.Events) != 0 {
		t.Errorf("from an hour ahead: %d events, want none", len(future.Events))
	}

	// NDJSON: the same records, one a line, as a download.
	resp, body, err := p.do(http.MethodGet, fmt.Sprintf("%s?partition=%d&from=0&format=ndjson", path, part), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("format=ndjson: %d, Content-Type %q, Content-Disposition %q", resp.StatusCode, ct, resp.Header.Get("Content-Disposition"))
	}
	var lines []browsed
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var b browsed
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

func assertBrowsed(t *testing.T, what string, got []browsed, part int, from int64, want []event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i, b := range got {
		e := want[i]
		ts, _ := time.Parse(time.RFC3339, b.Time)
		if b.Partition != part || b.Offset != from+int64(i) || b.ID != e.ID || !ts.Equal(e.TS) || b.IngestTime == "" {
			t.Errorf("%s: event %d = %+v, want partition %d offset %d id %s time %s", what, i, b, part, from+int64(i), e.ID, e.TS)
		}
		wantEvent := map[string]any{"ts": e.TS.Format(time.RFC3339), "host": e.Host, "region": e.Region, "cpu": e.CPU, "bytes": float64(e.Bytes)}
		if !reflect.DeepEqual(b.Event, wantEvent) {
			t.Errorf("%s: event %d body %v, want %v", what, i, b.Event, wantEvent)
		}
	}
}

func TestAPIViews(t *testing.T) {
	p, f := sharedPipeline(t)
	var list struct {
		Views []map[string]json.RawMessage `json:"views"`
	}
	p.getJSON(t, "/v1/views", &list)
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

	var v viewAnswer
	p.getJSON(t, "/v1/views/"+seedView, &v)
	if len(v.Rows) == 0 && !f.speed && v.Horizon == nil {
		t.Skip("the view has no rows: neither the speed nor the batch layer is wired into `lambdaflow run` yet")
	}
	assertRows(t, "all", v, f.windows())

	var eu viewAnswer
	p.getJSON(t, "/v1/views/"+seedView+"?region=eu", &eu)
	assertRows(t, "region=eu", eu, filterWindows(f.windows(), func(w window) bool { return w.Region == "eu" }))

	from, to := f.base.Add(2*time.Minute), f.base.Add(4*time.Minute)
	var rng viewAnswer
	p.getJSON(t, "/v1/views/"+seedView+"?from="+from.Format(time.RFC3339)+"&to="+to.Format(time.RFC3339), &rng)
	assertRows(t, "from..to", rng, filterWindows(f.windows(), func(w window) bool { return !w.Start.Before(from) && w.Start.Before(to) }))

	for q, code := range map[string]int{"?host=web-1": 400, "?from=soon": 400} {
		resp, _, err := p.do(http.MethodGet, "/v1/views/"+seedView+q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != code {
			t.Errorf("GET /v1/views/%s%s: %d, want %d", seedView, q, resp.StatusCode, code)
		}
	}
	resp, _, _ := p.do(http.MethodGet, "/v1/views/nope", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown view: %d, want 404", resp.StatusCode)
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
	resp, body, err := p.do(http.MethodPost, "/v1/views/"+seedView+"/recompute", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		Job string `json:"job"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(body, &started) != nil || started.Job == "" {
		t.Fatalf("POST recompute: %d %s, want 2xx {\"job\": id}", resp.StatusCode, body)
	}
	var job jobStatus
	wait.For(t, 60*time.Second, func() error {
		p.getJSON(t, "/v1/jobs/"+url.PathEscape(started.Job), &job)
		if job.State != "succeeded" {
			return fmt.Errorf("job %s: %s %s", job.ID, job.State, job.Error)
		}
		return nil
	})
	if job.ID != started.Job || job.View != seedView || job.Rows != int64(len(f.events)) || job.Done != job.Total {
		t.Errorf("job = %+v, want id %s, view %s, %d rows read, done = total", job, started.Job, seedView, len(f.events))
	}
	var jobs struct {
		Jobs []jobStatus `json:"jobs"`
	}
	p.getJSON(t, "/v1/jobs", &jobs)
	if !slices.ContainsFunc(jobs.Jobs, func(j jobStatus) bool { return j.ID == started.Job && j.State == "succeeded" }) {
		t.Errorf("GET /v1/jobs has no succeeded %s: %+v", started.Job, jobs.Jobs)
	}
	// The batch layer's rows equal the independent computation, and so the
	// speed layer's: the two layers agree.
	var v viewAnswer
	p.getJSON(t, "/v1/views/"+seedView, &v)
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
	p.getJSON(t, "/v1/sinks", &raw)
	var a struct {
		Sinks []struct {
			Name    string   `json:"name"`
			Type    string   `json:"type"`
			Sources []string `json:"sources"`
			Healthy bool     `json:"healthy"`
			Error   string   `json:"error"`
		} `json:"sinks"`
	}
	p.getJSON(t, "/v1/sinks", &a)
	got := map[string]string{}
	for i, s := range a.Sinks {
		keys := []string{"name", "type", "sources", "healthy"}
		if !s.Healthy {
			keys = append(keys, "error")
		}
		assertKeys(t, "sink", raw.Sinks[i], keys...)
		got[s.Name] = fmt.Sprintf("%s %v healthy=%v", s.Type, s.Sources, s.Healthy)
	}
	want := map[string]string{"warehouse": "duckdb [metrics] healthy=true", "archive": "postgres [metrics] healthy=false"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET /v1/sinks = %v, want %v", got, want)
	}
	var dlq map[string]json.RawMessage
	p.getJSON(t, "/v1/sinks/warehouse/dlq", &dlq)
	if string(dlq["sink"]) != `"warehouse"` || string(dlq["dead_letters"]) != `[]` {
		t.Errorf("GET /v1/sinks/warehouse/dlq = %s %s, want warehouse and []", dlq["sink"], dlq["dead_letters"])
	}
	resp, body, err := p.do(http.MethodPost, "/v1/sinks/warehouse/dlq/replay", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rep) != nil || rep["replayed"] != 0.0 || rep["failed"] != 0.0 {
		t.Errorf("POST replay: %d %s, want 200 with replayed 0, failed 0", resp.StatusCode, body)
	}
	resp, _, _ = p.do(http.MethodGet, "/v1/sinks/nope/dlq", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown sink: %d, want 404", resp.StatusCode)
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
