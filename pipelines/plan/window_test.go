package plan

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// Microseconds; not sec and min, which would shadow the builtin min.
const (
	usSec = int64(time.Second / time.Microsecond)
	usMin = 60 * usSec
)

func windowPlan(t *testing.T, w pipelines.Window) *Plan {
	t.Helper()
	v := designView()
	v.Window = w
	return mustCompile(t, v)
}

func TestWindowTumbling(t *testing.T) {
	p := windowPlan(t, pipelines.Window{Type: "tumbling", Size: minutes(1)})
	f := func(ts, start int64) {
		t.Helper()
		got := p.Windows(ts, nil)
		if want := []TimeWindow{{start, start + usMin}}; !slices.Equal(got, want) {
			t.Errorf("Windows(%d) = %v, want %v", ts, got, want)
		}
	}
	f(0, 0)
	f(usMin-1, 0)
	f(usMin, usMin)
	f(1_700_000_123_456_789, 1_700_000_100_000_000) // aligned to the epoch minute
	f(-1, -usMin)                                   // before 1970: floor, not truncation
	f(-usMin, -usMin)
	f(-usMin-1, -2*usMin)
	// dst is appended to, not replaced.
	if got := p.Windows(5, []TimeWindow{{1, 2}}); len(got) != 2 || got[0] != (TimeWindow{1, 2}) {
		t.Errorf("Windows did not append: %v", got)
	}
}

func TestWindowHopping(t *testing.T) {
	p := windowPlan(t, pipelines.Window{Type: "hopping", Size: minutes(10), Slide: minutes(5)})
	f := func(ts int64, starts ...int64) {
		t.Helper()
		var want []TimeWindow
		for _, s := range starts {
			want = append(want, TimeWindow{s, s + 10*usMin})
		}
		if got := p.Windows(ts, nil); !slices.Equal(got, want) {
			t.Errorf("Windows(%d) = %v, want %v", ts, got, want)
		}
	}
	f(0, -5*usMin, 0)
	f(5*usMin-1, -5*usMin, 0)
	f(5*usMin, 0, 5*usMin) // boundary: enters [5m,15m), leaves [-5m,5m)
	f(10*usMin-1, 0, 5*usMin)
	f(10*usMin, 5*usMin, 10*usMin)
	f(-1, -10*usMin, -5*usMin)

	// Slide not dividing size: every window containing t, and only those.
	p = windowPlan(t, pipelines.Window{Type: "hopping", Size: minutes(7), Slide: minutes(3)})
	for _, ts := range []int64{0, 1, 3*usMin - 1, 3 * usMin, 7*usMin - 1, 7 * usMin, 123456789, -987654321} {
		got := p.Windows(ts, nil)
		var want []TimeWindow
		for s := floorDiv(ts-7*usMin, 3*usMin) * 3 * usMin; s <= ts; s += 3 * usMin {
			if s <= ts && ts < s+7*usMin {
				want = append(want, TimeWindow{s, s + 7*usMin})
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("Windows(%d) = %v, want %v", ts, got, want)
		}
	}

	// Slide equal to size is tumbling.
	p = windowPlan(t, pipelines.Window{Type: "hopping", Size: minutes(1), Slide: minutes(1)})
	if got := p.Windows(90*usSec, nil); !slices.Equal(got, []TimeWindow{{usMin, 2 * usMin}}) {
		t.Errorf("hopping with slide = size: %v", got)
	}
}

func TestWindowStarts(t *testing.T) {
	f := func(p *Plan, from, to, first, last int64) {
		t.Helper()
		if f, l := p.WindowStarts(from, to); f != first || l != last {
			t.Errorf("%s: WindowStarts(%d, %d) = %d, %d, want %d, %d", p.Window().Type, from, to, f, l, first, last)
		}
	}
	tumbling := windowPlan(t, pipelines.Window{Type: "tumbling", Size: minutes(1)})
	f(tumbling, 0, usMin, 0, 0)
	f(tumbling, 1, 3*usMin+1, usMin, 3*usMin)
	f(tumbling, -usMin-1, -1, -usMin, -usMin) // before 1970: aligned the same way
	f(tumbling, 1, usMin, usMin, 0)           // none starts there
	hopping := windowPlan(t, pipelines.Window{Type: "hopping", Size: minutes(10), Slide: minutes(5)})
	f(hopping, -1, 11*usMin, 0, 10*usMin)
	f(hopping, 5*usMin, 5*usMin+1, 5*usMin, 5*usMin)
	session := windowPlan(t, pipelines.Window{Type: "session", Gap: minutes(5)})
	f(session, 7, 9, 7, 8)
}

func TestWindowSessionViewHasNoFixedWindows(t *testing.T) {
	p := windowPlan(t, pipelines.Window{Type: "session", Gap: minutes(5)})
	if !p.Session() {
		t.Fatal("Session() = false")
	}
	if got := p.Windows(123, nil); len(got) != 0 {
		t.Errorf("Windows on a session view = %v", got)
	}
}

// sessionPlan counts events and keeps first/last ids, gap 10s.
func sessionPlan(t *testing.T) *Plan {
	t.Helper()
	v := designView()
	v.Where = ""
	v.Window = pipelines.Window{Type: "session", Gap: pipelines.Duration(10 * time.Second)}
	v.Aggregates = pipelines.Aggregates{
		{Name: "n", Func: "count"},
		{Name: "first", Func: "first", Field: "host"},
		{Name: "last", Func: "last", Field: "host"},
	}
	return mustCompile(t, v)
}

type sessionRow struct {
	w     TimeWindow
	n     int64
	first string
	last  string
}

func sessionRows(p *Plan, ss *Sessions) []sessionRow {
	var rows []sessionRow
	for _, s := range ss.List() {
		vs := p.Finalize(s.State)
		rows = append(rows, sessionRow{s.TimeWindow, vs[0].I, vs[1].S, vs[2].S})
	}
	return rows
}

func TestWindowSessions(t *testing.T) {
	p := sessionPlan(t)
	var ss Sessions
	add := func(ts int64, host string) (Session, []TimeWindow) {
		return p.AddSession(&ss, newEvent(ts*usSec, host, map[int]any{testtopic.Host: host}), nil)
	}
	check := func(want ...sessionRow) {
		t.Helper()
		if got := sessionRows(p, &ss); !slices.Equal(got, want) {
			t.Errorf("sessions = %v\nwant       %v", got, want)
		}
	}
	s, gone := add(100, "a")
	if s.TimeWindow != (TimeWindow{100 * usSec, 110 * usSec}) || len(gone) != 0 {
		t.Errorf("new session = %v, gone %v", s.TimeWindow, gone)
	}
	add(105, "b") // extends
	check(row(100, 115, 2, "a", "b"))
	add(115, "c") // exactly gap after the last event: a new session
	check(row(100, 115, 2, "a", "b"), row(115, 125, 1, "c", "c"))
	add(50, "z") // far earlier: its own session, kept sorted
	check(row(50, 60, 1, "z", "z"), row(100, 115, 2, "a", "b"), row(115, 125, 1, "c", "c"))

	// A bridging event merges two sessions and their states.
	s, gone = add(110, "m")
	if want := (TimeWindow{100 * usSec, 125 * usSec}); s.TimeWindow != want {
		t.Errorf("bridged session = %v, want %v", s.TimeWindow, want)
	}
	if want := []TimeWindow{{115 * usSec, 125 * usSec}}; !slices.Equal(gone, want) {
		t.Errorf("gone = %v, want %v", gone, want)
	}
	check(row(50, 60, 1, "z", "z"), row(100, 125, 4, "a", "c"))

	// An early event that moves a session's start reports the old window.
	s, gone = add(95, "y")
	if s.Start != 95*usSec || !slices.Equal(gone, []TimeWindow{{100 * usSec, 125 * usSec}}) {
		t.Errorf("moved start: %v, gone %v", s.TimeWindow, gone)
	}
	add(70, "p")
	add(86, "q")
	check(row(50, 60, 1, "z", "z"), row(70, 80, 1, "p", "p"), row(86, 125, 6, "q", "c"))
	add(59, "r")           // [59,69) extends [50,60) but does not reach [70,80)
	_, gone = add(65, "s") // [65,75) bridges [50,69) and [70,80)
	if !slices.Equal(gone, []TimeWindow{{70 * usSec, 80 * usSec}}) {
		t.Errorf("gone = %v", gone)
	}
	_, gone = add(79, "t") // [79,89) bridges [50,80) and [86,125)
	check(row(50, 125, 11, "z", "c"))
	if !slices.Equal(gone, []TimeWindow{{86 * usSec, 125 * usSec}}) {
		t.Errorf("gone = %v", gone)
	}

	// Close hands out what the watermark has passed.
	add(200, "late")
	closed := ss.Close(125*usSec, nil)
	if len(closed) != 1 || closed[0].TimeWindow != (TimeWindow{50 * usSec, 125 * usSec}) {
		t.Errorf("closed = %v", closed)
	}
	check(row(200, 210, 1, "late", "late"))
}

func row(start, end, n int64, first, last string) sessionRow {
	return sessionRow{TimeWindow{start * usSec, end * usSec}, n, first, last}
}

// TestWindowSessionsOrderInvariance adds the same events in random orders and
// random partitions (merged with MergeSessions) and expects the same sessions.
func TestWindowSessionsOrderInvariance(t *testing.T) {
	p := sessionPlan(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var events []*event.Event
	ts := int64(0)
	for i := range 300 {
		ts += rng.Int64N(12 * usSec) // gaps around the 10s session gap
		events = append(events, newEvent(ts, string(rune('a'+i%26))+string(rune('a'+i/26)), map[int]any{testtopic.Host: "h"}))
	}
	var want Sessions
	for _, e := range events {
		p.AddSession(&want, e, nil)
	}
	wantRows := sessionRows(p, &want)
	if len(wantRows) < 10 {
		t.Fatalf("only %d sessions: the test data does not exercise merging", len(wantRows))
	}
	for trial := range 20 {
		perm := slices.Clone(events)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		parts := make([]Sessions, 1+rng.IntN(5))
		for _, e := range perm {
			p.AddSession(&parts[rng.IntN(len(parts))], e, nil)
		}
		var got Sessions
		for _, i := range rng.Perm(len(parts)) {
			p.MergeSessions(&got, &parts[i], nil)
		}
		if gotRows := sessionRows(p, &got); !slices.Equal(gotRows, wantRows) {
			t.Fatalf("trial %d: %d partitions give\n%v\nwant\n%v", trial, len(parts), gotRows, wantRows)
		}
	}
}
