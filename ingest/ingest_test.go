package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/brokertest"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// openBroker opens the real broker (embedded nats-server, file store,
// fsync before ack) on p and creates its topics; the test's cleanup closes
// it.
func openBroker(t testing.TB, p *pipelines.Pipeline, now func() time.Time) *broker.Broker {
	t.Helper()
	return brokertest.Open(t, p, broker.Options{Registerer: prometheus.NewRegistry(), Now: now})
}

// startOnBroker opens the broker on p and runs an Ingest on it, sharing
// one fake clock.
func startOnBroker(t testing.TB, p *pipelines.Pipeline) (*harness, *broker.Broker) {
	t.Helper()
	c := newClock()
	b := openBroker(t, p, c.Now)
	h := startIngest(t, p, BrokerLog(b), Options{Now: c.Now})
	h.clock = c
	return h, b
}

// ends returns every partition's end offset of topic.
func ends(t testing.TB, b *broker.Broker, topic string) []int64 {
	t.Helper()
	infos, err := b.Topics(context.Background())
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	for _, ti := range infos {
		if ti.Name == topic {
			var out []int64
			for _, p := range ti.Partitions {
				out = append(out, p.EndOffset)
			}
			return out
		}
	}
	t.Fatalf("no topic %q", topic)
	return nil
}

// logEvents reads a partition from the start to its end.
func logEvents(t testing.TB, b *broker.Broker, topic string, part int) []event.Event {
	t.Helper()
	end := ends(t, b, topic)[part]
	var out []event.Event
	if end == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.Reader(ctx, topic, part, broker.FromStart())
	if err != nil {
		t.Fatalf("Reader: %v", err)
	}
	defer r.Close()
	for int64(len(out)) < end {
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if e.Offset != int64(len(out)) {
			t.Fatalf("entry at offset %d after %d events", e.Offset, len(out))
		}
		out = append(out, e.Events...)
	}
	return out
}

func val(s string) event.Value { return event.Value{S: s, Valid: true} }

func TestIngestBodyForms(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	h, b := startOnBroker(t, p)
	const (
		e1 = `{"id":"a","ts":"2024-05-01T10:00:00Z","host":"h1","region":"eu","cpu":0.5,"bytes":1}`
		e2 = `{"id":"b","ts":1714557601000,"host":"h2","region":"us","cpu":2,"bytes":-2}`
		e3 = `{"id":"c","ts":"2024-05-01T10:00:02.5+00:00","host":"h3","region":"ap","cpu":-1e-3,"bytes":3}`
	)
	cases := []struct {
		name, body, contentType string
		want                    string
	}{
		{"object", e1, "application/json",
			`{"accepted":1,"results":[{"partition":0,"offset":0,"duplicate":false}]}`},
		{"array", "[" + e2 + ",\n" + e3 + "]", "application/json; charset=utf-8",
			`{"accepted":2,"results":[{"partition":0,"offset":1,"duplicate":false},{"partition":0,"offset":2,"duplicate":false}]}`},
		{"ndjson", strings.ReplaceAll(e1+"\n"+e2+"\n"+e3+"\n", `"id":"`, `"id":"n`), "application/x-ndjson",
			`{"accepted":3,"results":[{"partition":0,"offset":3,"duplicate":false},{"partition":0,"offset":4,"duplicate":false},{"partition":0,"offset":5,"duplicate":false}]}`},
		{"no-content-type", strings.ReplaceAll(e1, `"id":"a"`, `"id":"z"`), "",
			`{"accepted":1,"results":[{"partition":0,"offset":6,"duplicate":false}]}`},
		{"curl-default-form-type", strings.ReplaceAll(e1, `"id":"a"`, `"id":"y"`), "application/x-www-form-urlencoded",
			`{"accepted":1,"results":[{"partition":0,"offset":7,"duplicate":false}]}`},
	}
	for _, c := range cases {
		var hdr []string
		if c.contentType != "" {
			hdr = []string{"Content-Type", c.contentType}
		}
		code, out, rh := h.post("metrics", c.body, hdr...)
		if code != 200 || out != c.want+"\n" || rh.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", c.name, code, out)
		}
	}

	// The log holds exactly what was sent, typed.
	got := logEvents(t, b, "metrics", 0)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if want := []string{"a", "b", "c", "na", "nb", "nc", "z", "y"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %v", ids)
	}
	ingest := h.clock.Now().UnixMicro()
	wantC := event.Event{ID: "c", Time: 1714557602500000, Ingest: ingest, Values: []event.Value{
		{I: 1714557602500000, Valid: true}, val("h3"), val("ap"), {F: -1e-3, Valid: true}, {I: 3, Valid: true}}}
	if !reflect.DeepEqual(got[2], wantC) {
		t.Fatalf("log event 2:\ngot  %+v\nwant %+v", got[2], wantC)
	}
	if v := h.counter("lambdaflow_ingest_events_total", "topic", "metrics"); v != 8 {
		t.Fatalf("events_total %v", v)
	}
	if v := h.counter("lambdaflow_ingest_ack_seconds"); v != 5 {
		t.Fatalf("ack_seconds count %v", v)
	}
	wantBytes := 0
	for _, c := range cases {
		wantBytes += len(c.body)
	}
	if v := h.counter("lambdaflow_ingest_bytes_total", "topic", "metrics"); v != float64(wantBytes) {
		t.Fatalf("bytes_total %v, want %d", v, wantBytes)
	}
}

func TestIngestPartitionsByKeyHash(t *testing.T) {
	const parts = 4
	p := testPipeline(t.TempDir(), *metricsTopic(parts))
	h, b := startOnBroker(t, p)
	var body strings.Builder
	var hosts []string
	for i := range 200 {
		host := fmt.Sprintf("host-%d", i%23)
		hosts = append(hosts, host)
		fmt.Fprintf(&body, `{"id":"e%d","ts":%d,"host":%q,"region":"eu","cpu":1,"bytes":%d}`+"\n", i, 1714557600000+i, host, i)
	}
	for round := range 2 {
		r := h.postOK("metrics", strings.ReplaceAll(body.String(), `"id":"e`, fmt.Sprintf(`"id":"r%d-e`, round)))
		if r.Accepted != 200 {
			t.Fatalf("accepted %d", r.Accepted)
		}
		next := make([]int64, parts)
		for i, res := range r.Results {
			if want := event.PartitionOf(hosts[i], parts); res.Partition != want {
				t.Fatalf("event %d (%s): partition %d, want %d", i, hosts[i], res.Partition, want)
			}
			if round == 1 && next[res.Partition] == 0 {
				next[res.Partition] = res.Offset // continues after round 0
			}
			if res.Offset != next[res.Partition] || res.Duplicate {
				t.Fatalf("event %d: %+v, want offset %d", i, res, next[res.Partition])
			}
			next[res.Partition]++
		}
	}
	// Each partition's log holds its events in request order.
	total := 0
	for part := range parts {
		evs := logEvents(t, b, "metrics", part)
		total += len(evs)
		for _, e := range evs {
			if event.PartitionOf(e.Values[1].S, parts) != part {
				t.Fatalf("event %s of host %s in partition %d", e.ID, e.Values[1].S, part)
			}
		}
	}
	if total != 400 {
		t.Fatalf("log holds %d events", total)
	}
}

func TestPartitionDocumentedHash(t *testing.T) {
	// The reference is hash/fnv, the documented function.
	f := func(key string, n, want int) {
		t.Helper()
		if got := event.PartitionOf(key, n); got != want {
			t.Fatalf("event.PartitionOf(%q, %d) = %d, want %d", key, n, got, want)
		}
	}
	f("", 4, int(uint32(2166136261)%4))
	f("host-1", 1, 0)
	for _, key := range []string{"host-1", "a", "ümlaut", "12345"} {
		f(key, 7, int(fnvRef(key)%7))
	}
	// Non-string keys hash their canonical text.
	pt := partitioner{n: 8, keyIdx: 0, keyTyp: event.TypeLong}
	ev := event.Event{ID: "x", Values: []event.Value{{I: -42, Valid: true}}}
	if got, want := pt.of(&ev), event.PartitionOf("-42", 8); got != want {
		t.Fatalf("long key: %d, want %d", got, want)
	}
	pt.keyTyp = event.TypeDouble
	ev.Values[0] = event.Value{F: 0.1, Valid: true}
	if got, want := pt.of(&ev), event.PartitionOf("0.1", 8); got != want {
		t.Fatalf("double key: %d, want %d", got, want)
	}
	pt.keyTyp = event.TypeBool
	ev.Values[0] = event.Value{I: 1, Valid: true}
	if got, want := pt.of(&ev), event.PartitionOf("true", 8); got != want {
		t.Fatalf("bool key: %d, want %d", got, want)
	}
	// A null key spreads by id.
	ev.Values[0] = event.Value{}
	if got, want := pt.of(&ev), event.PartitionOf("x", 8); got != want {
		t.Fatalf("null key: %d, want %d", got, want)
	}
}

func TestIngestRejectsBadInput(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(2))
	p.Ingest.MaxBodyBytes = 4096
	h, b := startOnBroker(t, p)
	h.postOK("metrics", `{"id":"seed","ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}`)
	before := ends(t, b, "metrics")

	good := `{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}`
	cases := []struct {
		name, body string
		hdr        []string
		code       int
		want       string
	}{
		{"empty", "", nil, 400, `{"error":"empty body"}`},
		{"blank", "  \n", nil, 400, `{"error":"empty body"}`},
		{"wrong type ndjson", good + "\n" + good + "\n" + good + "\n" + `{"ts":1,"host":"h","region":"eu","cpu":"high","bytes":1}`, nil, 400,
			`{"error":"line 4: record 3: field \"cpu\": expected double, got string","record":3,"line":4,"field":"cpu"}`},
		{"wrong type array", "[" + good + "," + good + "," + good + "," + `{"ts":1,"host":"h","region":"eu","cpu":"high","bytes":1}]`, nil, 400,
			`{"error":"record 3: field \"cpu\": expected double, got string","record":3,"field":"cpu"}`},
		{"missing required", `{"ts":1,"host":"h","cpu":1,"bytes":1}`, nil, 400,
			`{"error":"line 1: record 0: field \"region\": missing required field","record":0,"line":1,"field":"region"}`},
		{"missing time", `{"host":"h","region":"eu","cpu":1,"bytes":1}`, nil, 400,
			`{"error":"line 1: record 0: field \"ts\": missing required field","record":0,"line":1,"field":"ts"}`},
		{"unknown field", good + "\n" + `{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1,"mem":3}`, nil, 400,
			`{"error":"line 2: record 1: field \"mem\": unknown field (not in the schema of topic \"metrics\")","record":1,"line":2,"field":"mem"}`},
		{"nested", `{"ts":1,"host":{"name":"h"},"region":"eu","cpu":1,"bytes":1}`, nil, 400,
			`{"error":"line 1: record 0: field \"host\": nested objects and arrays are not supported (events are flat)","record":0,"line":1,"field":"host"}`},
		{"fraction in long", `[` + good + `,{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1.5}]`, nil, 400,
			`{"error":"record 1: field \"bytes\": expected long, got non-integral number \"1.5\"","record":1,"field":"bytes"}`},
		{"null required", `{"ts":1,"host":null,"region":"eu","cpu":1,"bytes":1}`, nil, 400,
			`{"error":"line 1: record 0: field \"host\": null for a required field","record":0,"line":1,"field":"host"}`},
		{"syntax", good + "\n" + `{"ts":1,`, nil, 400,
			`{"error":"line 2: record 1: expected a string key, got end of body","record":1,"line":2}`},
		{"not objects", `[1,2]`, nil, 400,
			`{"error":"record 0: expected a JSON object, got number","record":0}`},
		{"scalar", `42`, nil, 400,
			`{"error":"expected a JSON object, an array of objects or NDJSON, got number"}`},
		{"content type", good, []string{"Content-Type", "text/csv"}, 415,
			`{"error":"unsupported Content-Type \"text/csv\"; use application/json, application/x-ndjson or none (text/plain and application/x-www-form-urlencoded are read as JSON too)"}`},
		{"content encoding", good, []string{"Content-Encoding", "gzip"}, 415,
			`{"error":"unsupported Content-Encoding \"gzip\""}`},
		{"too large", strings.Repeat(good+"\n", 100), nil, 413,
			`{"error":"request body larger than ingest.max_body_bytes (4096 bytes)"}`},
	}
	for _, c := range cases {
		code, out, hdr := h.post("metrics", c.body, c.hdr...)
		if code != c.code || out != c.want+"\n" || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s:\ngot  %d %s\nwant %d %s", c.name, code, out, c.code, c.want)
		}
	}
	if after := ends(t, b, "metrics"); !reflect.DeepEqual(after, before) {
		t.Fatalf("log end offsets moved from %v to %v", before, after)
	}
	if v := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "invalid"); v != 15 {
		t.Fatalf("invalid rejects %v", v)
	}
	if v := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "too_large"); v != 1 {
		t.Fatalf("too_large rejects %v", v)
	}
}

func TestIngestHTTPServer(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	p.Ingest.MaxBodyBytes = 1024
	// A view and a sink: the log holds their topics, which refuse publishing.
	p.Views = []pipelines.View{{Name: "by_region", From: "metrics", GroupBy: []string{"region"},
		Window:     pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
		Aggregates: pipelines.Aggregates{{Name: "events", Func: "count"}}}}
	p.Sinks = []pipelines.Sink{{Name: "warehouse", Type: "duckdb", From: []string{"by_region"}}}
	h, b := startOnBroker(t, p)
	srv := httptest.NewServer(h.http)
	defer srv.Close()
	client := srv.Client()
	do := func(method, path, ct string, body io.Reader) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out), resp.Header
	}
	good := `{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}` + "\n"

	code, out, _ := do("POST", "/v1/topics/metrics/events", "application/x-ndjson", strings.NewReader(good+good))
	if code != 200 || out != `{"accepted":2,"results":[{"partition":0,"offset":0,"duplicate":false},{"partition":0,"offset":1,"duplicate":false}]}`+"\n" {
		t.Fatalf("%d %s", code, out)
	}
	for _, c := range []struct {
		topic  string
		status int
		out    string
		allow  string
	}{
		{"nope", 404, `{"error":"unknown topic \"nope\" (topics: metrics)"}`, ""},
		{"metrcs", 404, `{"error":"unknown topic \"metrcs\" (did you mean \"metrics\"?)"}`, ""},
		{"by_region", 405, `{"error":"topic \"by_region\" holds the rows of view by_region, which the speed and batch layers write; publish to its source topic \"metrics\" instead"}`, "GET"},
		{"warehouse_dlq", 405, `{"error":"topic \"warehouse_dlq\" holds the dead letters of sink warehouse, which the sink writes; replay them with POST /v1/sinks/warehouse/dlq/replay (lambdaflow dlq replay warehouse)"}`, "GET"},
	} {
		code, out, hdr := do("POST", "/v1/topics/"+c.topic+"/events", "", strings.NewReader(good))
		if code != c.status || out != c.out+"\n" || hdr.Get("Allow") != c.allow {
			t.Errorf("POST to %s: %d %s (Allow %q), want %d %s (Allow %q)", c.topic, code, out, hdr.Get("Allow"), c.status, c.out, c.allow)
		}
	}
	if v := h.counter("lambdaflow_ingest_rejects_total", "topic", "", "reason", "unknown_topic"); v != 4 {
		t.Fatalf("unknown_topic rejects %v", v)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		code, out, hdr := do(m, "/v1/topics/metrics/events", "", nil)
		if code != 405 || hdr.Get("Allow") != "POST" || out != `{"error":"method `+m+` not allowed; use POST"}`+"\n" {
			t.Fatalf("%s: %d %s %v", m, code, out, hdr)
		}
	}
	// Over the limit, with a Content-Length and streamed without one.
	big := strings.Repeat(good, 30)
	code, out, _ = do("POST", "/v1/topics/metrics/events", "", strings.NewReader(big))
	if code != 413 || out != `{"error":"request body larger than ingest.max_body_bytes (1024 bytes)"}`+"\n" {
		t.Fatalf("%d %s", code, out)
	}
	code, out, _ = do("POST", "/v1/topics/metrics/events", "", io.MultiReader(strings.NewReader(big))) // chunked
	if code != 413 || out != `{"error":"request body larger than ingest.max_body_bytes (1024 bytes)"}`+"\n" {
		t.Fatalf("chunked: %d %s", code, out)
	}
	if got := ends(t, b, "metrics"); !reflect.DeepEqual(got, []int64{2}) {
		t.Fatalf("end offsets %v", got)
	}
}

func TestIngestAuth(t *testing.T) {
	topic := *metricsTopic(1)
	topic.WriteTokens = []string{"w-secret", "w-other"}
	open := *metricsTopic(1)
	open.Name = "open"
	p := testPipeline(t.TempDir(), topic, open)
	p.Auth.ReadTokens = []string{"r-secret"}
	h, b := startOnBroker(t, p)
	good := `{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}`
	const unauthorized = `{"error":"a valid bearer token is required (topics[].write_tokens)"}` + "\n"
	for _, c := range []struct {
		name   string
		hdr    []string
		code   int
		want   string
		bearer bool
	}{
		{"none", nil, 401, unauthorized, true},
		{"wrong", []string{"Authorization", "Bearer w-secreT"}, 401, unauthorized, true},
		{"prefix", []string{"Authorization", "Bearer w-secret2"}, 401, unauthorized, true},
		{"basic", []string{"Authorization", "Basic dzpzZWNyZXQ="}, 401, `{"error":"the Authorization header must be \"Bearer \u003ctoken\u003e\" (topics[].write_tokens)"}` + "\n", true},
		{"read token", []string{"Authorization", "Bearer r-secret"}, 403, `{"error":"token may read but not write to topic \"metrics\" (topics[].write_tokens)"}` + "\n", false},
		{"write token", []string{"Authorization", "Bearer w-secret"}, 200, `{"accepted":1,"results":[{"partition":0,"offset":0,"duplicate":false}]}` + "\n", false},
		{"scheme case", []string{"Authorization", "bearer w-other"}, 200, `{"accepted":1,"results":[{"partition":0,"offset":1,"duplicate":false}]}` + "\n", false},
	} {
		code, out, hdr := h.post("metrics", good, c.hdr...)
		if code != c.code || out != c.want {
			t.Errorf("%s: %d %s", c.name, code, out)
		}
		if c.bearer != (hdr.Get("WWW-Authenticate") == `Bearer realm="lambdaflow"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, hdr.Get("WWW-Authenticate"))
		}
	}
	// A topic without write tokens is open, also to holders of read tokens.
	h.postOK("open", good)
	h.postOK("open", good, "Authorization", "Bearer r-secret")
	if got := ends(t, b, "metrics"); !reflect.DeepEqual(got, []int64{2}) {
		t.Fatalf("end offsets %v", got)
	}
	if v := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "unauthorized"); v != 5 {
		t.Fatalf("unauthorized rejects %v", v)
	}
}

func TestIngestUnavailableWhenBrokerClosed(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	h, b := startOnBroker(t, p)
	h.postOK("metrics", bodyIDs("a"))
	b.Close()
	code, out, hdr := h.post("metrics", bodyIDs("b"))
	if code != 503 || hdr.Get("Retry-After") != "1" ||
		out != `{"error":"the log is unavailable: ingest: append failed: broker: closed; events of this request may be durable: retry it with the same ids or Idempotency-Key"}`+"\n" {
		t.Fatalf("%d %s", code, out)
	}
	if v := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "unavailable"); v != 1 {
		t.Fatalf("unavailable rejects %v", v)
	}
}

// gateLog holds Appends of a real log until released, to fill
// max_in_flight deterministically.
type gateLog struct {
	Log
	entered chan struct{}
	release chan struct{}
}

func (g gateLog) AppendUnique(ctx context.Context, topic string, partition int, events []event.Event, unique []bool) ([]broker.Placement, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Log.AppendUnique(ctx, topic, partition, events, unique)
}

func TestIngestOverloaded(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	p.Ingest.MaxInFlight = 100
	c := newClock()
	b := openBroker(t, p, c.Now)
	g := gateLog{Log: BrokerLog(b), entered: make(chan struct{}, 16), release: make(chan struct{})}
	h := startIngest(t, p, g, Options{Now: c.Now})
	held := h.postAsync("metrics", bodyIDs(seqIDs("a", 60)...))
	<-g.entered
	code, out, hdr := h.post("metrics", bodyIDs(seqIDs("b", 41)...))
	if code != 429 || hdr.Get("Retry-After") != "1" || out != `{"error":"too many events in flight; retry later"}`+"\n" {
		t.Fatalf("%d %s", code, out)
	}
	close(g.release)
	if r := <-held; r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if r := h.postOK("metrics", bodyIDs(seqIDs("b", 41)...)); r.Accepted != 41 || r.Results[0].Offset != 60 {
		t.Fatalf("after release: %+v", r)
	}
	if got := ends(t, b, "metrics"); !reflect.DeepEqual(got, []int64{101}) {
		t.Fatalf("end offsets %v", got)
	}
}

func TestIngestDuplicates(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, *metricsTopic(2))
	h, b := startOnBroker(t, p)

	// Within one request: the second "x" is a duplicate of the first.
	first := h.postOK("metrics", bodyIDs("x", "y", "x"))
	if first.Accepted != 2 || first.Results[2] != (eventResult{Partition: first.Results[0].Partition, Offset: first.Results[0].Offset, Duplicate: true}) {
		t.Fatalf("within a request: %+v", first)
	}
	// Across requests, mixed with new events.
	second := h.postOK("metrics", bodyIDs("y", "w"))
	if second.Accepted != 1 || second.Results[0] != (eventResult{Partition: first.Results[1].Partition, Offset: first.Results[1].Offset, Duplicate: true}) ||
		second.Results[1].Duplicate {
		t.Fatalf("across requests: %+v", second)
	}
	// Idempotency-Key names the events without an id of their own.
	const anon = `{"ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}`
	keyed := anon + "\n" + `{"id":"own","ts":1,"host":"h","region":"eu","cpu":1,"bytes":1}` + "\n" + anon
	k1 := h.postOK("metrics", keyed, "Idempotency-Key", "req-7")
	k2 := h.postOK("metrics", keyed, "Idempotency-Key", "req-7")
	if k1.Accepted != 3 || k2.Accepted != 0 {
		t.Fatalf("Idempotency-Key: %+v then %+v", k1, k2)
	}
	for i := range k1.Results {
		if want := (eventResult{Partition: k1.Results[i].Partition, Offset: k1.Results[i].Offset, Duplicate: true}); k2.Results[i] != want {
			t.Fatalf("Idempotency-Key result %d: %+v, want %+v", i, k2.Results[i], want)
		}
	}
	// Without ids, the same body lands twice.
	if r := h.postOK("metrics", anon); r.Accepted != 1 {
		t.Fatalf("%+v", r)
	}
	if r := h.postOK("metrics", anon); r.Accepted != 1 {
		t.Fatalf("%+v", r)
	}
	if v := h.counter("lambdaflow_ingest_duplicates_total", "topic", "metrics"); v != 5 {
		t.Fatalf("duplicates_total %v", v)
	}
	idsOf := func() map[string]int {
		m := map[string]int{}
		for part := range 2 {
			for _, e := range logEvents(t, b, "metrics", part) {
				m[e.ID]++
			}
		}
		return m
	}
	ids := idsOf()
	for _, id := range []string{"x", "y", "w", "own", "req-7:0", "req-7:2"} {
		if ids[id] != 1 {
			t.Fatalf("id %q appears %d times in the log: %v", id, ids[id], ids)
		}
	}
	if len(ids) != 8 {
		t.Fatalf("log ids %v", ids)
	}

	// After a restart on the same data_dir the index is rebuilt from the log.
	endsBefore := ends(t, b, "metrics")
	h.stop()
	b.Close()
	h2, b2 := startOnBroker(t, p)
	again := h2.postOK("metrics", bodyIDs("x", "y", "x"))
	want := reply{Accepted: 0, Results: []eventResult{
		{first.Results[0].Partition, first.Results[0].Offset, true},
		{first.Results[1].Partition, first.Results[1].Offset, true},
		{first.Results[0].Partition, first.Results[0].Offset, true},
	}}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("after restart: %+v, want %+v", again, want)
	}
	if k3 := h2.postOK("metrics", keyed, "Idempotency-Key", "req-7"); k3.Accepted != 0 || !reflect.DeepEqual(k3.Results, k2.Results) {
		t.Fatalf("Idempotency-Key after restart: %+v", k3)
	}
	if got := ends(t, b2, "metrics"); !reflect.DeepEqual(got, endsBefore) {
		t.Fatalf("log moved from %v to %v", endsBefore, got)
	}

	// Past the dedup window an id is new again.
	h2.clock.Add(p.Ingest.DedupWindow.D() + time.Second)
	if r := h2.postOK("metrics", bodyIDs("x")); r.Accepted != 1 || r.Results[0].Duplicate {
		t.Fatalf("after the window: %+v", r)
	}
}

func TestIngestConcurrentSameIDLandsOnce(t *testing.T) {
	p := testPipeline(t.TempDir(), *metricsTopic(3))
	h, b := startOnBroker(t, p)
	var body strings.Builder
	for i := range 50 {
		fmt.Fprintf(&body, `{"id":"e%d","ts":1,"host":"host-%d","region":"eu","cpu":1,"bytes":1}`+"\n", i, i)
	}
	const clients = 8
	replies := make([]reply, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			code, out, _ := h.post("metrics", body.String())
			if code != 200 {
				t.Errorf("client %d: %d %s", c, code, out)
				return
			}
			if err := json.Unmarshal([]byte(out), &replies[c]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	accepted := 0
	for c, r := range replies {
		accepted += r.Accepted
		for i := range r.Results {
			a, b := r.Results[i], replies[0].Results[i]
			if a.Partition != b.Partition || a.Offset != b.Offset {
				t.Fatalf("client %d event %d: %+v, client 0 %+v", c, i, a, b)
			}
		}
	}
	if accepted != 50 {
		t.Fatalf("accepted %d in total, want 50", accepted)
	}
	var total int64
	for _, e := range ends(t, b, "metrics") {
		total += e
	}
	if total != 50 {
		t.Fatalf("log holds %d events", total)
	}
}

func fnvRef(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// TestIngestRetryThroughAnotherProcess: two ingest processes on one log (a
// load balancer in front of them); a request retried through the other one
// lands once, its events answered as duplicates where they first landed.
func TestIngestRetryThroughAnotherProcess(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	p := testPipeline(t.TempDir(), *metricsTopic(3))
	p.Broker.URL = ns.ClientURL()
	c := newClock()
	b1, b2 := openBroker(t, p, c.Now), openBroker(t, p, c.Now)
	h1 := startIngest(t, p, BrokerLog(b1), Options{Now: c.Now})
	h2 := startIngest(t, p, BrokerLog(b2), Options{Now: c.Now})

	var body strings.Builder
	for i := range 40 {
		fmt.Fprintf(&body, `{"ts":1,"host":"host-%d","region":"eu","cpu":1,"bytes":1}`+"\n", i)
	}
	first := h1.postOK("metrics", body.String(), "Idempotency-Key", "order-1")
	if first.Accepted != 40 {
		t.Fatalf("first: %+v", first)
	}
	retry := h2.postOK("metrics", body.String(), "Idempotency-Key", "order-1")
	if retry.Accepted != 0 {
		t.Fatalf("retry through the other process appended %d events", retry.Accepted)
	}
	for i, r := range retry.Results {
		if want := (eventResult{first.Results[i].Partition, first.Results[i].Offset, true}); r != want {
			t.Fatalf("event %d: %+v, want %+v", i, r, want)
		}
	}
	// Interleaved: each process appends in turn, half of each request
	// repeating the other's previous one.
	for k := range 6 {
		h := []*harness{h1, h2}[k%2]
		var b strings.Builder
		for i := range 10 {
			fmt.Fprintf(&b, `{"id":"r%d-%d","ts":1,"host":"host-%d","region":"eu","cpu":1,"bytes":1}`+"\n", k-i/5, i%5, i%5)
		}
		if r := h.postOK("metrics", b.String()); (k == 0 && r.Accepted != 10) || (k > 0 && r.Accepted != 5) {
			t.Fatalf("request %d: %+v", k, r)
		}
	}
	total := 0
	ids := map[string]int{}
	for part := range 3 {
		for _, e := range logEvents(t, b1, "metrics", part) {
			ids[e.ID]++
			total++
		}
	}
	// 40 of the first request, then r-1 and r0…r5 with 5 ids each.
	if total != 40+7*5 || len(ids) != total {
		dups := 0
		for _, n := range ids {
			dups += n - 1
		}
		t.Fatalf("%d events in the log, %d distinct, %d stored twice", total, len(ids), dups)
	}
}
