package testenv

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// watchEvery is how often VerifyNoLeaks' goroutine watch samples every
// goroutine's stack: often enough that a goroutine living a few hundred
// milliseconds is seen, rarely enough that its stop-the-world dumps cost
// the tests little (a dump of 2,000 goroutines takes about a millisecond).
const watchEvery = 100 * time.Millisecond

// goroutineWatch samples the stacks of all goroutines while a package's
// tests run, to tell, once goroutines leaked, which test made them. A leak
// report alone names only the leaked goroutine's creator function and its
// goroutine number, which has usually ended by then: the watch keeps, for
// every goroutine it saw, who created it, and which tests were running at
// each sample.
type goroutineWatch struct {
	done     chan struct{}
	finished chan struct{}

	mu      sync.Mutex
	seen    map[int64]goroutineSeen
	samples []sample
	intern  map[string]string
}

// goroutineSeen is what the watch learned of one goroutine.
type goroutineSeen struct {
	entry  string // the function it runs, e.g. "server.(*jetStream).monitorCluster"
	parent int64  // the goroutine that started it (0: unknown)
	first  int    // the sample it first appeared in
	test   string // the test it runs, if it is a test's goroutine
}

// sample is one look at all goroutines.
type sample struct {
	maxID int64    // the highest goroutine id seen up to this sample
	tests []string // the tests running, sorted
}

func startGoroutineWatch(every time.Duration) *goroutineWatch {
	w := &goroutineWatch{
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		seen:     make(map[int64]goroutineSeen),
		intern:   make(map[string]string),
	}
	go func() {
		defer close(w.finished)
		buf := make([]byte, 1<<20)
		for {
			start := time.Now()
			buf = w.sample(buf)
			// A dump stops the world: with many goroutines, sample less
			// often, so that the watch never takes more than a twentieth
			// of the time.
			wait := max(every, 20*time.Since(start))
			select {
			case <-w.done:
				w.sample(buf)
				return
			case <-time.After(wait):
			}
		}
	}()
	return w
}

// stop ends the sampling and waits for it, so that the watch's own
// goroutine is not a leak.
func (w *goroutineWatch) stop() {
	close(w.done)
	<-w.finished
}

// sample records the goroutines alive now. It returns buf, grown if the
// dump did not fit.
func (w *goroutineWatch) sample(buf []byte) []byte {
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := parseStacks(buf)
	buf = buf[:cap(buf)]

	w.mu.Lock()
	defer w.mu.Unlock()
	idx := len(w.samples)
	var s sample
	if idx > 0 {
		// The highest id seen so far, which grows with time even when
		// the newest goroutine has ended (sampleAtID searches it).
		s.maxID = w.samples[idx-1].maxID
	}
	for _, g := range stacks {
		s.maxID = max(s.maxID, g.id)
		if g.test != "" {
			s.tests = append(s.tests, w.str(g.test))
		}
		if _, ok := w.seen[g.id]; !ok {
			w.seen[g.id] = goroutineSeen{entry: w.str(g.entry), parent: g.parent, first: idx, test: w.str(g.test)}
		}
	}
	slices.Sort(s.tests)
	s.tests = slices.Compact(s.tests)
	if idx > 0 && slices.Equal(w.samples[idx-1].tests, s.tests) {
		s.tests = w.samples[idx-1].tests // share: most samples see the same tests
	}
	w.samples = append(w.samples, s)
	return buf
}

// str returns a copy of s shared with every equal string the watch keeps:
// s points into the dump buffer, which must not be kept alive, and the
// same few creator functions repeat for thousands of goroutines.
func (w *goroutineWatch) str(s string) string {
	if s == "" {
		return ""
	}
	if c, ok := w.intern[s]; ok {
		return c
	}
	c := strings.Clone(s)
	w.intern[c] = c
	return c
}

// createdDuring returns the tests that were running when goroutine id was
// created: those of the samples just before and at its first appearance,
// or, for a goroutine no sample saw, of the samples whose highest
// goroutine id brackets id (ids grow with time, give or take the small
// batches the runtime hands each processor). after reports a goroutine
// created after the last sample, when the tests had ended.
func (w *goroutineWatch) createdDuring(id int64) (tests []string, after bool) {
	at := -1
	if g, ok := w.seen[id]; ok {
		at = g.first
	} else {
		at = sampleAtID(w.samples, id)
	}
	if at == len(w.samples) {
		return nil, true
	}
	for _, i := range []int{at - 1, at} {
		if i >= 0 && i < len(w.samples) {
			tests = append(tests, w.samples[i].tests...)
		}
	}
	slices.Sort(tests)
	return slices.Compact(tests), false
}

// sampleAtID returns the first sample whose highest goroutine id is at least
// id, or len(samples).
func sampleAtID(samples []sample, id int64) int {
	i, _ := slices.BinarySearchFunc(samples, id, func(s sample, id int64) int {
		switch {
		case s.maxID < id:
			return -1
		case s.maxID > id:
			return 1
		}
		return 0
	})
	return i
}

// owner follows the chain of creators up from goroutine id to a test's
// goroutine and returns the test's name and what the goroutines on the way
// run (id's first), or "" when the chain leaves what the watch saw.
func (w *goroutineWatch) owner(id int64) (test string, runs []string) {
	for range 64 {
		g, ok := w.seen[id]
		if !ok {
			return "", runs
		}
		if g.test != "" {
			return g.test, runs
		}
		runs = append(runs, g.entry)
		id = g.parent
	}
	return "", runs
}

// summarize counts the leaked goroutines by top function and creator,
// and names for each group the tests that were running when they were
// created and the test under which their creator goroutine started.
func (w *goroutineWatch) summarize(leaked []goroutineStack) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type group struct {
		top, creator string
		n            int
		parents      []int64
		during       []string
		after        bool // some were created after the tests ended
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for _, g := range leaked {
		k := [2]string{g.top, g.creator}
		gr := byKey[k]
		if gr == nil {
			gr = &group{top: g.top, creator: g.creator}
			byKey[k] = gr
			groups = append(groups, gr)
		}
		gr.n++
		if !slices.Contains(gr.parents, g.parent) {
			gr.parents = append(gr.parents, g.parent)
		}
		during, after := w.createdDuring(g.id)
		gr.during = append(gr.during, during...)
		gr.after = gr.after || after
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return b.n - a.n })
	var sb strings.Builder
	fmt.Fprintf(&sb, "goleak: %d goroutines leaked:\n", len(leaked))
	for _, gr := range groups {
		fmt.Fprintf(&sb, "  %d × %s, created by %s\n", gr.n, short(gr.top), short(gr.creator))
		for _, p := range gr.parents {
			// runs: what goroutine p runs, what the goroutine that
			// started it runs, and so on up to the test.
			switch test, runs := w.owner(p); {
			case test != "" && len(runs) == 0:
				fmt.Fprintf(&sb, "    creator goroutine %d is %s's own\n", p, test)
			case test != "":
				fmt.Fprintf(&sb, "    creator goroutine %d runs %s, under %s\n", p, chain(runs), test)
			case len(runs) > 0:
				fmt.Fprintf(&sb, "    creator goroutine %d runs %s, under no test\n", p, chain(runs))
			default:
				fmt.Fprintf(&sb, "    creator goroutine %d was never sampled\n", p)
			}
		}
		slices.Sort(gr.during)
		if during := slices.Compact(gr.during); len(during) > 0 {
			fmt.Fprintf(&sb, "    created while running: %s\n", strings.Join(during, ", "))
		} else if !gr.after {
			fmt.Fprintf(&sb, "    created while no test was running\n")
		}
		if gr.after {
			fmt.Fprintf(&sb, "    created after the tests ended: a goroutine outlived its owner's shutdown\n")
		}
	}
	return sb.String()
}

func chain(via []string) string {
	out := make([]string, len(via))
	for i, f := range via {
		out[i] = short(f)
	}
	return strings.Join(out, " ← ")
}

// short drops a function name's package path: "server.(*Server).Start".
func short(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// goroutineStack is what parseStacks reads of one goroutine.
type goroutineStack struct {
	id      int64
	top     string // the function on top of its stack
	entry   string // the function at the bottom: what it runs
	creator string // the function that started it
	parent  int64  // the goroutine that started it
	test    string // the test it runs ("TestFoo"), if any
}

var (
	// headerRE starts a goroutine: "goroutine 12 [select]:" in a dump,
	// "Goroutine 12 in state select, with …" in goleak's report, which
	// lists them as a Go slice ("[G… G…]").
	headerRE  = regexp.MustCompile(`^[\[ ]?[Gg]oroutine (\d+) (?:\[|in state )`)
	createdRE = regexp.MustCompile(`^created by (\S+)(?: in goroutine (\d+))?`)
	// testFuncRE finds a test's name in the function that testing.tRunner
	// calls: "pkg.TestFoo", or "pkg.TestFoo.func2" for a subtest.
	testFuncRE = regexp.MustCompile(`\.((?:Test|Benchmark|Fuzz)[^.(]*)`)
)

// parseStacks reads a dump in runtime.Stack's format (goleak's report
// embeds the same frames under its own headers): "goroutine N [state]:",
// then a function line and a tab-indented file line per frame, then
// "created by F in goroutine M".
func parseStacks(dump []byte) []goroutineStack {
	var out []goroutineStack
	var g *goroutineStack
	var prevFunc []byte // the frame above the current line
	var frames [][]byte // g's, top first
	for len(dump) > 0 {
		line := dump
		if i := bytes.IndexByte(dump, '\n'); i >= 0 {
			line, dump = dump[:i], dump[i+1:]
		} else {
			dump = nil
		}
		if m := headerRE.FindSubmatch(line); m != nil {
			id, _ := strconv.ParseInt(string(m[1]), 10, 64)
			out = append(out, goroutineStack{id: id})
			g = &out[len(out)-1]
			prevFunc, frames = nil, frames[:0]
			continue
		}
		if g == nil || len(line) == 0 || line[0] == '\t' {
			continue
		}
		if m := createdRE.FindSubmatch(line); m != nil {
			g.creator = string(m[1])
			g.parent, _ = strconv.ParseInt(string(m[2]), 10, 64)
			g.entry = string(entryFunc(frames, m[1]))
			g = nil // what follows belongs to no frame (goleak's own text)
			continue
		}
		fn := funcName(line)
		if g.top == "" {
			g.top = string(fn)
		}
		if string(fn) == "testing.tRunner" && prevFunc != nil {
			if m := testFuncRE.FindSubmatch(prevFunc); m != nil {
				g.test = string(m[1])
			}
		}
		prevFunc = fn
		frames = append(frames, fn)
	}
	return out
}

// entryFunc is what a goroutine runs: its bottom frame, unless that is a
// launcher's wrapper (a closure of the creator, such as nats-server's
// startGoRoutine.func1, or pprof.Do setting labels), then the frame the
// wrapper calls.
func entryFunc(frames [][]byte, creator []byte) []byte {
	closure := append(slices.Clip(creator), ".func"...)
	for i := len(frames) - 1; i >= 0; i-- {
		f := frames[i]
		if !bytes.HasPrefix(f, closure) && string(f) != "runtime/pprof.Do" || i == 0 {
			return f
		}
	}
	return nil
}

// funcName cuts a frame's arguments: "pkg.(*T).M(0xc000, ...)" is
// "pkg.(*T).M".
func funcName(line []byte) []byte {
	if i := bytes.LastIndexByte(line, '('); i > 0 && line[len(line)-1] == ')' {
		return line[:i]
	}
	return line
}

// parseLeaks reads the goroutines out of goleak's error.
func parseLeaks(report string) []goroutineStack {
	return parseStacks([]byte(report))
}
