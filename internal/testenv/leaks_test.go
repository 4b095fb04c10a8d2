package testenv

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// parkUntil is the leaked goroutine of TestLeakSummaryNamesTheTest.
func parkUntil(release <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	<-release
}

// TestLeakSummaryNamesTheTest leaks a goroutine the way an embedded
// server does: started by a goroutine of the test's that has ended by the
// time goleak looks. The summary must count it by top function and
// creator and name the test both ways (the creator's ancestry and the
// tests running when it was created).
func TestLeakSummaryNamesTheTest(t *testing.T) {
	before := goleak.IgnoreCurrent()
	w := startGoroutineWatch(time.Millisecond)
	release, parked := make(chan struct{}), make(chan struct{})
	proceed, creatorDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(creatorDone)
		go parkUntil(release, parked)
		<-proceed // until the watch saw this goroutine
	}()
	waitSamples(t, w, 3)
	close(proceed)
	<-creatorDone
	w.stop()

	err := goleak.Find(before)
	if err == nil {
		t.Fatal("goleak found no leak")
	}
	var out bytes.Buffer
	reportLeaks(&out, w, err)
	close(release)
	<-parked

	summary := w.summarize(parseLeaks(err.Error()))
	for _, want := range []string{
		"goleak: 1 goroutines leaked:\n",
		"  1 × testenv.parkUntil, created by testenv.TestLeakSummaryNamesTheTest.func1\n",
		" runs testenv.TestLeakSummaryNamesTheTest.func1, under TestLeakSummaryNamesTheTest\n",
		"created while running: TestLeakSummaryNamesTheTest\n",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	// Before and after goleak's dump, which a CI log may cut either way.
	report := out.String()
	if first, last := strings.Index(report, summary), strings.LastIndex(report, summary); first < 0 || first == last ||
		!strings.Contains(report[first:last], "found unexpected goroutines") {
		t.Errorf("the report is not summary, dump, summary:\n%s", report)
	}
}

// waitSamples waits until the watch sampled n more times.
func waitSamples(t *testing.T, w *goroutineWatch, n int) {
	t.Helper()
	w.mu.Lock()
	want := len(w.samples) + n
	w.mu.Unlock()
	CheckUntil(t, time.Minute, time.Millisecond, "goroutine samples", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.samples) >= want
	})
}

// TestParseStacks reads this goroutine's own stack: its id, its top
// function, its creator and the test it runs.
func TestParseStacks(t *testing.T) {
	buf := make([]byte, 1<<16)
	stacks := parseStacks(buf[:runtimeStack(buf)])
	if len(stacks) != 1 {
		t.Fatalf("parsed %d goroutines from one stack: %+v", len(stacks), stacks)
	}
	g := stacks[0]
	if g.id <= 0 || g.top != "github.com/lambdaflow/lambdaflow/internal/testenv.runtimeStack" || g.entry != "testing.tRunner" ||
		g.creator != "testing.(*T).Run" || g.parent <= 0 || g.test != "TestParseStacks" {
		t.Fatalf("parsed %+v", g)
	}
}

// runtimeStack is the top frame of TestParseStacks' dump.
//
//go:noinline
func runtimeStack(buf []byte) int { return runtime.Stack(buf, false) }

// TestCreatedDuring dates goroutines by the samples: one a sample saw by
// the sample it first appeared in, one none saw by its id, and one newer
// than every sample as created after the tests.
func TestCreatedDuring(t *testing.T) {
	w := &goroutineWatch{
		samples: []sample{{maxID: 10, tests: []string{"TestA"}}, {maxID: 20, tests: []string{"TestB"}}, {maxID: 30}},
		seen:    map[int64]goroutineSeen{15: {first: 1}},
	}
	for _, c := range []struct {
		id    int64
		tests []string
		after bool
	}{
		{15, []string{"TestA", "TestB"}, false}, // between samples 0 and 1
		{25, []string{"TestB"}, false},          // between samples 1 and 2
		{5, []string{"TestA"}, false},           // before the first sample
		{31, nil, true},
	} {
		tests, after := w.createdDuring(c.id)
		if !slices.Equal(tests, c.tests) || after != c.after {
			t.Errorf("createdDuring(%d) = %v, %v; want %v, %v", c.id, tests, after, c.tests, c.after)
		}
	}
}

// TestParseStacksEntry: what a goroutine runs is the function a launcher's
// wrapper calls (nats-server starts its goroutines through a closure of
// startGoRoutine), not the wrapper.
func TestParseStacksEntry(t *testing.T) {
	dump := "goroutine 7 [select]:\n" +
		"github.com/nats-io/nats-server/v2/server.(*Server).processJSAPIRoutedRequests(0xc000010000)\n" +
		"\t/go/server/jetstream_api.go:1080 +0x1a5\n" +
		"github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1()\n" +
		"\t/go/server/server.go:4005 +0x5c\n" +
		"created by github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine in goroutine 5\n" +
		"\t/go/server/server.go:3998 +0x16f\n"
	got := parseStacks([]byte(dump))
	want := goroutineStack{
		id:      7,
		top:     "github.com/nats-io/nats-server/v2/server.(*Server).processJSAPIRoutedRequests",
		entry:   "github.com/nats-io/nats-server/v2/server.(*Server).processJSAPIRoutedRequests",
		creator: "github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine",
		parent:  5,
	}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
}
