package plan

import (
	"strings"
	"sync"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// The where expression through a plan: Plan.Match and Plan.NewMatcher.

func TestExprMatch(t *testing.T) {
	v := designView()
	f := func(where string, vals map[int]any, want bool, wantErr bool) {
		t.Helper()
		v.Where = where
		p := mustCompile(t, v)
		e := newEvent(1_700_000_000_000_000, "id", vals)
		got, err := p.Match(e)
		if (err != nil) != wantErr || got != want {
			t.Errorf("%q on %v = %v, %v; want %v (error: %v)", where, vals, got, err, want, wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), `view "cpu_by_region": where:`) {
			t.Errorf("error %q does not name the view", err)
		}
		// A Matcher agrees, also when reused across events.
		m := p.NewMatcher()
		for range 2 {
			got2, err2 := m.Match(e)
			if got2 != got || (err2 != nil) != (err != nil) {
				t.Errorf("%q: Matcher = %v, %v; Plan.Match = %v, %v", where, got2, err2, got, err)
			}
		}
	}
	f(`cpu >= 0`, map[int]any{testtopic.CPU: 1.5}, true, false)
	f(`cpu >= 0`, map[int]any{testtopic.CPU: -1.5}, false, false)
	f(`region == "eu" && bytes > 100`, map[int]any{testtopic.Region: "eu", testtopic.Bytes: int64(101)}, true, false)
	f(`region == "eu" && bytes > 100`, map[int]any{testtopic.Region: "us", testtopic.Bytes: int64(101)}, false, false)
	f(`ok == true`, map[int]any{testtopic.OK: true}, true, false)
	f(`ok ?? false`, map[int]any{}, false, false)
	f(`ts >= date("2023-11-14T22:13:20Z")`, map[int]any{}, true, false)
	f(`ts.Year() == 2023`, map[int]any{}, true, false)
	// Optional fields are nil when missing.
	f(`note == nil`, map[int]any{}, true, false)
	f(`note == nil`, map[int]any{testtopic.Note: "x"}, false, false)
	f(`note != nil && note == "x"`, map[int]any{}, false, false)
	f(`note != nil && note == "x"`, map[int]any{testtopic.Note: "x"}, true, false)
	f(`(load ?? 0) > 1`, map[int]any{}, false, false)
	f(`(load ?? 0) > 1`, map[int]any{testtopic.Load: 2.0}, true, false)
	f(`code == 404`, map[int]any{testtopic.Code: int64(404)}, true, false)
	f(`code == 404`, map[int]any{}, false, false) // nil == 404 is false
	// Arithmetic or ordering on a missing field is a run-time error.
	f(`load > 1`, map[int]any{}, false, true)
	f(`code + 1 > 0`, map[int]any{}, false, true)
	// No where: everything matches.
	f(``, map[int]any{}, true, false)
}

// TestExprMatchReuse checks that the boxed-value cache never serves a stale
// value: alternating, repeating and disappearing values.
func TestExprMatchReuse(t *testing.T) {
	v := designView()
	v.Where = `region == "eu" && (load ?? -1) < 5`
	p := mustCompile(t, v)
	m := p.NewMatcher()
	seq := []struct {
		region string
		load   any
		want   bool
	}{
		{"eu", 1.0, true}, {"eu", 1.0, true}, {"us", 1.0, false}, {"eu", 7.0, false},
		{"eu", nil, true}, {"eu", nil, true}, {"eu", 6.0, false}, {"eu", nil, true}, {"eu", 6.0, false},
	}
	for i, s := range seq {
		e := newEvent(int64(i), "x", map[int]any{testtopic.Region: s.region, testtopic.Load: s.load})
		if got, err := m.Match(e); err != nil || got != s.want {
			t.Errorf("step %d (%s, %v) = %v, %v; want %v", i, s.region, s.load, got, err, s.want)
		}
	}
}

func TestExprMatchConcurrent(t *testing.T) {
	v := designView()
	v.Where = `bytes % 2 == 0`
	p := mustCompile(t, v)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				n := int64(g*10000 + i)
				got, err := p.Match(newEvent(n, "x", map[int]any{testtopic.Bytes: n}))
				if err != nil || got != (n%2 == 0) {
					t.Errorf("bytes=%d: %v, %v", n, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestExprMatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates; allocation counts are checked without -race")
	}
	for _, where := range []string{
		`cpu >= 0 && region != "x"`,        // native
		`host startsWith "h" && cpu > 0.5`, // VM, with repeated values
	} {
		v := designView()
		v.Where = where
		p := mustCompile(t, v)
		m := p.NewMatcher()
		e := newEvent(1, "a", map[int]any{testtopic.CPU: 3.5, testtopic.Region: "eu", testtopic.Host: "h1"})
		if n := testing.AllocsPerRun(100, func() { m.Match(e) }); n != 0 {
			t.Errorf("%s: Match of repeated values allocates %v times", where, n)
		}
		if n := testing.AllocsPerRun(100, func() { p.Match(e) }); n != 0 {
			t.Errorf("%s: Plan.Match of repeated values allocates %v times", where, n)
		}
	}
}
