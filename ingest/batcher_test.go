package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// fakeLog is a Log in memory for the unit tests of the logic above the Log
// interface: group commit, request outcomes, duplicates. It deduplicates
// ids per partition, as the broker does (the broker's own tests check its
// index against the real log). The integration tests run the same paths on
// the real broker.
type fakeLog struct {
	mu      sync.Mutex
	next    map[string]int64
	ids     map[string]int64 // "topic/partition/id" -> offset
	appends []fakeAppend
	// hold, when set, makes every Append announce itself on entered and
	// wait for a token (or close) of release before it proceeds.
	hold    bool
	entered chan fakeAppend
	release chan struct{}
	// fail, when set, decides an Append's error after its release.
	fail func(topic string, partition int) error

	releaseOnce sync.Once
}

// releaseAll lets every held Append through, now and later.
func (f *fakeLog) releaseAll() { f.releaseOnce.Do(func() { close(f.release) }) }

// startHeld starts an Ingest on f; a failing test releases held Appends
// before the Ingest stops (cleanups run last-in first-out), so that
// stopping cannot hang on them.
func startHeld(t *testing.T, p *pipelines.Pipeline, f *fakeLog, opts Options) *harness {
	h := startIngest(t, p, f, opts)
	t.Cleanup(f.releaseAll)
	return h
}

type fakeAppend struct {
	Topic     string
	Partition int
	IDs       []string
	First     int64
}

func newFakeLog(hold bool) *fakeLog {
	return &fakeLog{next: map[string]int64{}, ids: map[string]int64{}, hold: hold, entered: make(chan fakeAppend, 1024), release: make(chan struct{})}
}

func (f *fakeLog) AppendUnique(ctx context.Context, topic string, partition int, events []event.Event, unique []bool) ([]broker.Placement, error) {
	a := fakeAppend{Topic: topic, Partition: partition}
	for _, e := range events {
		a.IDs = append(a.IDs, e.ID)
	}
	if f.hold {
		f.entered <- a
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(topic, partition); err != nil {
			return nil, err
		}
	}
	k := fmt.Sprintf("%s/%d", topic, partition)
	out := make([]broker.Placement, len(events))
	a.IDs, a.First = nil, f.next[k]
	for i, e := range events {
		if off, ok := f.ids[k+"/"+e.ID]; ok && unique[i] {
			out[i] = broker.Placement{Partition: partition, Offset: off, Duplicate: true}
			continue
		}
		out[i] = broker.Placement{Partition: partition, Offset: f.next[k]}
		if unique[i] {
			f.ids[k+"/"+e.ID] = f.next[k]
		}
		f.next[k]++
		a.IDs = append(a.IDs, e.ID)
	}
	f.appends = append(f.appends, a)
	return out, nil
}

func (f *fakeLog) PrepareDedup(context.Context, string, int) error { return nil }

func (f *fakeLog) log() []fakeAppend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeAppend(nil), f.appends...)
}

// waitEntered returns the next Append that is being held.
func (f *fakeLog) waitEntered(t *testing.T) fakeAppend {
	t.Helper()
	select {
	case a := <-f.entered:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no Append arrived")
		return fakeAppend{}
	}
}

// gathered waits until the batcher of topic/partition holds n events in
// the batch it is forming.
func gathered(t *testing.T, in *Ingest, topic string, partition int, n int64) {
	t.Helper()
	b := in.topics[topic].batchers[partition]
	testenv.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if got := b.gathered.Load(); got != n {
			return fmt.Errorf("%d events gathered, want %d", got, n)
		}
		return nil
	})
}

// bodyIDs is an NDJSON body of events with the given ids on one host.
func bodyIDs(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, `{"id":%q,"ts":1714557600000,"host":"h","region":"eu","cpu":1,"bytes":2}`+"\n", id)
	}
	return b.String()
}

func seqIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// async posts in a goroutine; the result arrives on the channel.
type asyncReply struct {
	code int
	body string
	hdr  http.Header
}

func (h *harness) postAsync(topic, body string, header ...string) <-chan asyncReply {
	ch := make(chan asyncReply, 1)
	go func() {
		code, out, hdr := h.post(topic, body, header...)
		ch <- asyncReply{code, out, hdr}
	}()
	return ch
}

func TestGroupCommitGathersConcurrentRequests(t *testing.T) {
	fl := newFakeLog(true)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	h := startHeld(t, p, fl, Options{appendsInFlight: 1})

	first := h.postAsync("metrics", bodyIDs(seqIDs("a", 10)...))
	fl.waitEntered(t) // the log is busy with a's 10 events
	var rest []<-chan asyncReply
	for r := range 5 {
		rest = append(rest, h.postAsync("metrics", bodyIDs(seqIDs(fmt.Sprintf("r%d-", r), 10)...)))
	}
	gathered(t, h.in, "metrics", 0, 50)
	fl.releaseAll()

	if r := <-first; r.code != 200 {
		t.Fatalf("first: %d %s", r.code, r.body)
	}
	for _, ch := range rest {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	log := fl.log()
	if len(log) != 2 || len(log[0].IDs) != 10 || len(log[1].IDs) != 50 {
		sizes := []int{}
		for _, a := range log {
			sizes = append(sizes, len(a.IDs))
		}
		t.Fatalf("appends of %v events, want [10 50]", sizes)
	}
	if got := h.counter("lambdaflow_ingest_batch_events"); got != 2 {
		t.Fatalf("batch histogram has %v samples", got)
	}
}

func TestGroupCommitCutsAtMaxBatch(t *testing.T) {
	fl := newFakeLog(false)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	p.Ingest.MaxBatch = 25
	h := startHeld(t, p, fl, Options{appendsInFlight: 1})
	ids := seqIDs("e", 60)
	r := h.postOK("metrics", bodyIDs(ids...))
	for i, res := range r.Results {
		if res != (eventResult{Partition: 0, Offset: int64(i)}) {
			t.Fatalf("result %d: %+v", i, res)
		}
	}
	var got []string
	for _, a := range fl.log() {
		if len(a.IDs) > 25 {
			t.Fatalf("append of %d events", len(a.IDs))
		}
		got = append(got, a.IDs...)
	}
	if !reflect.DeepEqual(got, ids) {
		t.Fatalf("log holds %v", got)
	}
}

func TestStopDrainsQueuedEvents(t *testing.T) {
	fl := newFakeLog(true)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	h := startHeld(t, p, fl, Options{appendsInFlight: 1})
	first := h.postAsync("metrics", bodyIDs("a"))
	fl.waitEntered(t)
	second := h.postAsync("metrics", bodyIDs("b", "c"))
	gathered(t, h.in, "metrics", 0, 2)

	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	testenv.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if h.in.Ready() {
			return errors.New("still ready")
		}
		return nil
	})
	// Stopping: new requests are refused, queued ones still go out.
	if code, body, hdr := h.post("metrics", bodyIDs("d")); code != 503 || hdr.Get("Retry-After") != "1" ||
		body != `{"error":"ingest is not ready (starting or stopping)"}`+"\n" {
		t.Fatalf("while stopping: %d %s", code, body)
	}
	fl.releaseAll()
	<-stopped
	for _, ch := range []<-chan asyncReply{first, second} {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if log := fl.log(); len(log) != 2 || !reflect.DeepEqual(log[1].IDs, []string{"b", "c"}) {
		t.Fatalf("log %+v", log)
	}
}

// TestConcurrentSameIDLandsOnce: a request repeating an id that another
// request is appending goes into the next entry of the partition, after
// the first one's outcome, so the log sees it as a duplicate when the first
// succeeded and appends it when the first failed.
func TestConcurrentSameIDLandsOnce(t *testing.T) {
	for _, firstFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("firstFails=%v", firstFails), func(t *testing.T) {
			fl := newFakeLog(true)
			var failed sync.Once
			if firstFails {
				fl.fail = func(string, int) (err error) {
					failed.Do(func() { err = fmt.Errorf("%w: test", broker.ErrUnavailable) })
					return err
				}
			}
			p := testPipeline(t.TempDir(), *metricsTopic(1))
			h := startHeld(t, p, fl, Options{appendsInFlight: 1})
			a := h.postAsync("metrics", bodyIDs("x", "y"))
			if got := fl.waitEntered(t); !reflect.DeepEqual(got.IDs, []string{"x", "y"}) {
				t.Fatalf("first append %v", got.IDs)
			}
			// b shares x with a, which is appending it: b's events wait for
			// the next entry.
			b := h.postAsync("metrics", bodyIDs("z", "x"))
			gathered(t, h.in, "metrics", 0, 2)
			fl.release <- struct{}{} // a's append
			ra := <-a
			if got := fl.waitEntered(t); !reflect.DeepEqual(got.IDs, []string{"z", "x"}) {
				t.Fatalf("second append %v", got.IDs)
			}
			fl.release <- struct{}{}
			rb := <-b
			if !firstFails {
				if ra.code != 200 || ra.body != `{"accepted":2,"results":[{"partition":0,"offset":0,"duplicate":false},{"partition":0,"offset":1,"duplicate":false}]}`+"\n" {
					t.Fatalf("a: %d %s", ra.code, ra.body)
				}
				if rb.code != 200 || rb.body != `{"accepted":1,"results":[{"partition":0,"offset":2,"duplicate":false},{"partition":0,"offset":0,"duplicate":true}]}`+"\n" {
					t.Fatalf("b: %d %s", rb.code, rb.body)
				}
				if log := fl.log(); len(log) != 2 || !reflect.DeepEqual(log[1].IDs, []string{"z"}) {
					t.Fatalf("log %+v", log)
				}
				return
			}
			if ra.code != 503 || ra.hdr.Get("Retry-After") != "1" {
				t.Fatalf("a: %d %s", ra.code, ra.body)
			}
			// a failed: b's x is appended.
			if rb.code != 200 || rb.body != `{"accepted":2,"results":[{"partition":0,"offset":0,"duplicate":false},{"partition":0,"offset":1,"duplicate":false}]}`+"\n" {
				t.Fatalf("b: %d %s", rb.code, rb.body)
			}
		})
	}
}

func TestFailedAppendFailsRequestKeepsDurablePart(t *testing.T) {
	fl := newFakeLog(false)
	p := testPipeline(t.TempDir(), *metricsTopic(2))
	h := startHeld(t, p, fl, Options{})
	// Hosts on both partitions.
	hosts := map[int]string{}
	for i := 0; len(hosts) < 2; i++ {
		host := fmt.Sprintf("host-%d", i)
		if _, ok := hosts[event.PartitionOf(host, 2)]; !ok {
			hosts[event.PartitionOf(host, 2)] = host
		}
	}
	body := fmt.Sprintf(`{"id":"p0","ts":1,"host":%q,"region":"eu","cpu":1,"bytes":1}
{"id":"p1","ts":1,"host":%q,"region":"eu","cpu":1,"bytes":1}`, hosts[0], hosts[1])
	fl.fail = func(_ string, part int) error {
		if part == 1 {
			return fmt.Errorf("%w: partition 1 is down", broker.ErrUnavailable)
		}
		return nil
	}
	code, out, hdr := h.post("metrics", body)
	if code != 503 || hdr.Get("Retry-After") != "1" || !strings.Contains(out, "retry it with the same ids or Idempotency-Key") {
		t.Fatalf("%d %s", code, out)
	}
	if got := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "unavailable"); got != 1 {
		t.Fatalf("unavailable rejects %v", got)
	}
	fl.fail = nil
	r := h.postOK("metrics", body)
	want := reply{Accepted: 1, Results: []eventResult{{Partition: 0, Offset: 0, Duplicate: true}, {Partition: 1, Offset: 0}}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("retry: %+v", r)
	}
}

func TestOverloadedAnswers429(t *testing.T) {
	fl := newFakeLog(true)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	p.Ingest.MaxInFlight = 150
	h := startHeld(t, p, fl, Options{})
	held := h.postAsync("metrics", bodyIDs(seqIDs("a", 100)...))
	fl.waitEntered(t)

	code, out, hdr := h.post("metrics", bodyIDs(seqIDs("b", 51)...))
	if code != 429 || hdr.Get("Retry-After") != "1" || out != `{"error":"too many events in flight; retry later"}`+"\n" {
		t.Fatalf("%d %q %v", code, out, hdr)
	}
	// What fits still goes through.
	fifty := h.postAsync("metrics", bodyIDs(seqIDs("c", 50)...))
	gathered(t, h.in, "metrics", 0, 50)
	// A request that could never fit is too large, not overloaded.
	code, out, _ = h.post("metrics", bodyIDs(seqIDs("d", 151)...))
	if code != 413 || out != `{"error":"request holds 151 events, more than ingest.max_in_flight (150); split it"}`+"\n" {
		t.Fatalf("%d %q", code, out)
	}
	fl.releaseAll()
	for _, ch := range []<-chan asyncReply{held, fifty} {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if n := h.in.inFlight.Load(); n != 0 {
		t.Fatalf("%d events still counted in flight", n)
	}
	if got := h.counter("lambdaflow_ingest_rejects_total", "topic", "metrics", "reason", "overloaded"); got != 1 {
		t.Fatalf("overloaded rejects %v", got)
	}
}

func TestEventLargerThanAnEntry(t *testing.T) {
	fl := newFakeLog(false)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	h := startHeld(t, p, fl, Options{})
	big := strings.Repeat("x", maxEntryBytes)
	body := bodyIDs("a") + `{"ts":1,"host":"` + big + `","region":"eu","cpu":1,"bytes":1}`
	code, out, _ := h.post("metrics", body)
	if code != 413 || out != `{"error":"record 1: event larger than a log entry may hold (524288 bytes)","record":1}`+"\n" {
		t.Fatalf("%d %.200s", code, out)
	}
	// Events that fit are cut into entries of at most maxEntryBytes.
	half := strings.Repeat("y", maxEntryBytes/2)
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, `{"id":"h%d","ts":1,"host":"%s","region":"eu","cpu":1,"bytes":1}`+"\n", i, half)
	}
	if r := h.postOK("metrics", b.String()); r.Accepted != 5 {
		t.Fatalf("%+v", r)
	}
	if log := fl.log(); len(log) != 5 {
		t.Fatalf("%d appends for 5 events of half an entry each", len(log))
	}
}

// A request alone, with nobody else on the way, is appended at once: with
// a linger of an hour, waiting for company would never answer.
func TestGroupCommitAloneSendsAtOnce(t *testing.T) {
	fl := newFakeLog(false)
	p := testPipeline(t.TempDir(), *metricsTopic(2))
	p.Ingest.Linger = pipelines.Duration(time.Hour)
	h := startHeld(t, p, fl, Options{appendsInFlight: 1})
	for i := range 3 {
		h.postOK("metrics", bodyIDs(fmt.Sprintf("one-%d", i)))
	}
	if got := len(fl.log()); got != 3 {
		t.Fatalf("%d appends, want 3 (one per request)", got)
	}
}

// While a request of the topic is on its way, a batch waits for it (up to
// linger), and is sent when the last one on its way has left, holding
// what arrived meanwhile.
func TestGroupCommitWaitsForArrivingRequests(t *testing.T) {
	fl := newFakeLog(false)
	p := testPipeline(t.TempDir(), *metricsTopic(1))
	p.Ingest.Linger = pipelines.Duration(time.Hour)
	h := startHeld(t, p, fl, Options{appendsInFlight: 1})

	coming := h.in.topics["metrics"].arrivals.arrive() // a request being read
	a := h.postAsync("metrics", bodyIDs(seqIDs("a", 10)...))
	b := h.postAsync("metrics", bodyIDs(seqIDs("b", 5)...))
	gathered(t, h.in, "metrics", 0, 15)
	if got := fl.log(); len(got) != 0 {
		t.Fatalf("%d appends while a request was on its way, want none", len(got))
	}
	coming.leave() // it failed, say, and submitted nothing

	for _, ch := range []<-chan asyncReply{a, b} {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if got := fl.log(); len(got) != 1 || len(got[0].IDs) != 15 {
		t.Fatalf("appends %+v, want one of 15 events", got)
	}
}
