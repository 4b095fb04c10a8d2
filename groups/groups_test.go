package groups

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	b     *broker.Broker
	srv   *httptest.Server
	clock *clock
	n     int
	g     *Groups
}

func start(t *testing.T) *env {
	t.Helper()
	src := `version: 1
name: gt
data_dir: ` + t.TempDir() + `
topics:
  - {name: metrics, partitions: 2, schema: {host: string, n: long}}
`
	p, err := pipelines.Parse("gt.yaml", []byte(src), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := broker.Open(ctx, p, broker.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	reg := prometheus.NewRegistry()
	g, err := New(p, b, Options{Now: c.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.Handler(httpapi.NewAuth(p), g.Routes()))
	t.Cleanup(srv.Close)
	return &env{t: t, b: b, srv: srv, clock: c, g: g}
}

// append writes n events to a partition, ids e-<k> counting up.
func (e *env) append(part, n int) {
	e.t.Helper()
	var evs []event.Event
	for range n {
		evs = append(evs, event.Event{ID: fmt.Sprintf("e-%d", e.n), Values: []event.Value{{S: "h", Valid: true}, {I: int64(e.n), Valid: true}}})
		e.n++
	}
	if _, err := e.b.Append(context.Background(), "metrics", part, evs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) do(method, path, body string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) join(body string) api.Membership {
	e.t.Helper()
	status, out := e.do("POST", "/v1/groups/g/members", body)
	if status != http.StatusCreated {
		e.t.Fatalf("join: %d %s", status, out)
	}
	var m api.Membership
	json.Unmarshal([]byte(out), &m)
	return m
}

func (e *env) heartbeat(id string) api.Membership {
	e.t.Helper()
	status, out := e.do("POST", "/v1/groups/g/members/"+id+"/heartbeat", "")
	if status != http.StatusOK {
		e.t.Fatalf("heartbeat %s: %d %s", id, status, out)
	}
	var m api.Membership
	json.Unmarshal([]byte(out), &m)
	return m
}

// poll returns the ids and "p/o" of the events delivered.
func (e *env) poll(id, query string) []string {
	e.t.Helper()
	status, out := e.do("GET", "/v1/groups/g/members/"+id+"/events?"+query, "")
	if status != http.StatusOK {
		e.t.Fatalf("poll %s: %d %s", id, status, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev api.GroupEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			e.t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, fmt.Sprintf("%s@%d/%d", ev.ID, ev.Partition, ev.Offset))
	}
	return got
}

// TestHTTPGroup: members join, share the partitions, read them as NDJSON
// long polls, commit; a silent member's partitions go to the other, which
// reads what the silent one had not committed; lag shows the group.
func TestHTTPGroup(t *testing.T) {
	e := start(t)
	a := e.join(`{"topics":["metrics"],"session_timeout":"5s","client":"a"}`)
	if a.Generation != 1 || len(a.Assignments) != 2 {
		t.Fatalf("first member: %+v", a)
	}
	e.append(0, 3)
	e.append(1, 2)
	got := e.poll(a.Member, "max=100&wait=2s")
	want := []string{"e-0@0/0", "e-1@0/1", "e-2@0/2", "e-3@1/0", "e-4@1/1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("poll: %v, want %v", got, want)
	}
	// Nothing more: an empty answer after the wait.
	if got := e.poll(a.Member, "wait=100ms"); len(got) != 0 {
		t.Fatalf("second poll: %v", got)
	}
	status, out := e.do("POST", "/v1/groups/g/members/"+a.Member+"/commit", "")
	if want := `{"offsets":[{"topic":"metrics","partition":0,"offset":3},{"topic":"metrics","partition":1,"offset":2}]}` + "\n"; status != 200 || out != want {
		t.Fatalf("commit: %d %s, want %s", status, out, want)
	}

	// A second member: the partitions are shared.
	b := e.join(`{"topics":["metrics"],"session_timeout":"5s","client":"b"}`)
	a = e.heartbeat(a.Member)
	if a.Generation != 2 || b.Generation != 2 || len(a.Assignments) != 1 || len(b.Assignments) != 1 || a.Assignments[0] == b.Assignments[0] {
		t.Fatalf("after the second join: a %+v b %+v", a, b)
	}
	bPart, aPart := b.Assignments[0].Partition, a.Assignments[0].Partition
	// b starts at the group's committed position: nothing old.
	if got := e.poll(b.Member, "wait=0s"); len(got) != 0 {
		t.Fatalf("b read %v", got)
	}
	e.append(bPart, 1)
	got = e.poll(b.Member, "wait=2s")
	end := map[int]int{0: 3, 1: 2}[bPart]
	if want := fmt.Sprintf("e-5@%d/%d", bPart, end); fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("b read %v, want %s", got, want)
	}
	// b may not commit a's partition.
	if status, out := e.do("POST", "/v1/groups/g/members/"+b.Member+"/commit", fmt.Sprintf(`{"offsets":[{"topic":"metrics","partition":%d,"offset":1}]}`, aPart)); status != http.StatusConflict {
		t.Errorf("commit of another member's partition: %d %s, want 409", status, out)
	}

	// b goes silent without committing: after its session, a owns both
	// partitions and reads b's event again (at-least-once).
	e.clock.Add(3 * time.Second)
	e.heartbeat(a.Member)
	e.clock.Add(3 * time.Second)
	a = e.heartbeat(a.Member)
	if a.Generation != 3 || len(a.Assignments) != 2 {
		t.Fatalf("after b's session expired: %+v", a)
	}
	got = e.poll(a.Member, "wait=2s")
	if want := fmt.Sprintf("e-5@%d/%d", bPart, end); fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("a read %v after the rebalance, want %s", got, want)
	}
	if status, _ := e.do("POST", "/v1/groups/g/members/"+b.Member+"/heartbeat", ""); status != http.StatusNotFound {
		t.Errorf("heartbeat of the expired member: %d, want 404", status)
	}
	if status, out := e.do("POST", "/v1/groups/g/members/"+a.Member+"/commit", ""); status != 200 {
		t.Fatalf("commit: %d %s", status, out)
	}

	// GET /v1/groups and lag show the group's positions.
	status, out = e.do("GET", "/v1/groups/g", "")
	var d api.Group
	if err := json.Unmarshal([]byte(out), &d); status != 200 || err != nil {
		t.Fatalf("GET group: %d %s", status, out)
	}
	if d.Consumer != "http.g" || d.Protocol != "http" || d.Generation != 3 || len(d.Members) != 1 || len(d.Partitions) != 2 {
		t.Errorf("group: %s", out)
	}
	committed := map[int]int64{}
	for _, p := range d.Partitions {
		committed[p.Partition] = p.Committed
	}
	wantCommitted := map[int]int64{0: 3, 1: 2}
	wantCommitted[bPart]++
	if fmt.Sprint(committed) != fmt.Sprint(wantCommitted) || d.Lag != 0 {
		t.Errorf("group positions %v lag %d, want %v and 0", committed, d.Lag, wantCommitted)
	}
	lag, err := e.b.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lag {
		if l.Consumer == "http.g" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("lag lists http.g on %d partitions, want 2", n)
	}

	// Leaving: 204, then the member is unknown.
	if status, _ := e.do("DELETE", "/v1/groups/g/members/"+a.Member, ""); status != http.StatusNoContent {
		t.Errorf("leave: %d", status)
	}
	if status, _ := e.do("GET", "/v1/groups/g/members/"+a.Member+"/events?wait=0s", ""); status != http.StatusNotFound {
		t.Errorf("poll after leaving: %d, want 404", status)
	}
	// Bad input is refused with the reason.
	if status, out := e.do("POST", "/v1/groups/g/members", `{"topics":["nope"]}`); status != 400 || !strings.Contains(out, `unknown topic \"nope\"`) {
		t.Errorf("join of an unknown topic: %d %s", status, out)
	}
	// Four generations (two joins, an expiry, a leave); seven events
	// delivered (five, b's one, and a's reading of it again).
	if got := testutil.ToFloat64(e.g.metrics.rebalances.WithLabelValues("g")); got != 4 {
		t.Errorf("lambdaflow_groups_rebalances_total %v, want 4", got)
	}
	if got := testutil.ToFloat64(e.g.metrics.delivered.WithLabelValues("g")); got != 7 {
		t.Errorf("lambdaflow_groups_delivered_events_total %v, want 7", got)
	}
}

// TestHTTPGroupStream: server-sent events: the assignment first, then each
// event with its position as the event id.
func TestHTTPGroupStream(t *testing.T) {
	e := start(t)
	a := e.join(`{"topics":["metrics"]}`)
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/groups/g/members/"+a.Member+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	next := func() (string, string, string) {
		t.Helper()
		var ev, id, data string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && ev != "":
				return ev, id, data
			case strings.HasPrefix(line, "event: "):
				ev = line[7:]
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}
	if ev, _, data := next(); ev != "assignment" || !strings.Contains(data, `"generation":1`) {
		t.Fatalf("first: %s %s", ev, data)
	}
	e.append(1, 2)
	for i := range 2 {
		ev, id, data := next()
		if ev != "event" || id != fmt.Sprintf("metrics/1/%d", i) || !strings.Contains(data, fmt.Sprintf(`"id":"e-%d"`, i)) || !strings.Contains(data, fmt.Sprintf(`"value":{"host":"h","n":%d}`, i)) {
			t.Fatalf("event %d: %s %s %s", i, ev, id, data)
		}
	}
}
