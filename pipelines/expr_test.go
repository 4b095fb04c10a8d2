package pipelines

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestExprCheckWhere(t *testing.T) {
	schema := planTopic().Schema
	ok := []string{
		`cpu >= 0`,
		`cpu > 1 && region == "eu" || !(bytes < 10)`,
		`region in ["eu", "us"] and host startsWith "web-"`,
		`note != nil && note contains "x"`,
		`(load ?? 0) > 0.5`,
		`code == nil || code != 404`,
		`ok == true`,
		`ts > date("2024-01-01")`,
		`bytes % 2 == 0 and bytes > 1.5`,
		`len(host) > 3 && lower(region) matches "^eu"`,
	}
	for _, w := range ok {
		if err := CheckWhere(w, schema); err != nil {
			t.Errorf("CheckWhere(%q) = %v", w, err)
		}
	}
	bad := []struct{ where, msg string }{
		{`region > 3`, "mismatched types string and int"},
		{`cpu == "high"`, "mismatched types double and string"},
		{`bytes + host`, "mismatched types long and string"},
		{`cpu + 1`, "expected bool"},
		{`region`, "expected bool"},
		{`cpux > 1`, "unknown name cpux"},
		{`ts > now()`, "now"},
		{`cpu >`, "unexpected token"},
		{`ok > 1`, "mismatched types bool and int"},
		{`ok`, "expected bool, but got optional bool"},
	}
	for _, c := range bad {
		err := CheckWhere(c.where, schema)
		var ee *ExprError
		if !errors.As(err, &ee) {
			t.Errorf("CheckWhere(%q) = %v, want an *ExprError", c.where, err)
			continue
		}
		if !strings.Contains(ee.Msg, c.msg) || ee.Line != 1 || ee.Col < 1 {
			t.Errorf("CheckWhere(%q) = %q at %d:%d, want %q", c.where, ee.Msg, ee.Line, ee.Col, c.msg)
		}
	}
	// The column points at the problem.
	var ee *ExprError
	if errors.As(CheckWhere(`cpu > 1 && region == 1`, schema), &ee) && ee.Col != 19 {
		t.Errorf("column %d, want 19: %v\n%s", ee.Col, ee, ee.Snippet)
	}
}

func TestExprMatch(t *testing.T) {
	v := designView()
	f := func(where string, vals map[int]any, want bool, wantErr bool) {
		t.Helper()
		v.Where = where
		p := mustCompile(t, v)
		e := event(1_700_000_000_000_000, "id", vals)
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
	f(`cpu >= 0`, map[int]any{fCPU: 1.5}, true, false)
	f(`cpu >= 0`, map[int]any{fCPU: -1.5}, false, false)
	f(`region == "eu" && bytes > 100`, map[int]any{fRegion: "eu", fBytes: int64(101)}, true, false)
	f(`region == "eu" && bytes > 100`, map[int]any{fRegion: "us", fBytes: int64(101)}, false, false)
	f(`ok == true`, map[int]any{fOK: true}, true, false)
	f(`ok ?? false`, map[int]any{}, false, false)
	f(`ts >= date("2023-11-14T22:13:20Z")`, map[int]any{}, true, false)
	f(`ts.Year() == 2023`, map[int]any{}, true, false)
	// Optional fields are nil when missing.
	f(`note == nil`, map[int]any{}, true, false)
	f(`note == nil`, map[int]any{fNote: "x"}, false, false)
	f(`note != nil && note == "x"`, map[int]any{}, false, false)
	f(`note != nil && note == "x"`, map[int]any{fNote: "x"}, true, false)
	f(`(load ?? 0) > 1`, map[int]any{}, false, false)
	f(`(load ?? 0) > 1`, map[int]any{fLoad: 2.0}, true, false)
	f(`code == 404`, map[int]any{fCode: int64(404)}, true, false)
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
		e := event(int64(i), "x", map[int]any{fRegion: s.region, fLoad: s.load})
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
				got, err := p.Match(event(n, "x", map[int]any{fBytes: n}))
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
		e := event(1, "a", map[int]any{fCPU: 3.5, fRegion: "eu", fHost: "h1"})
		if n := testing.AllocsPerRun(100, func() { m.Match(e) }); n != 0 {
			t.Errorf("%s: Match of repeated values allocates %v times", where, n)
		}
		if n := testing.AllocsPerRun(100, func() { p.Match(e) }); n != 0 {
			t.Errorf("%s: Plan.Match of repeated values allocates %v times", where, n)
		}
	}
}

// TestExprFastPathAgreesWithVM generates random expressions, most in the
// natively compiled subset, and random events with nulls: the native path
// must give what the VM gives, errors included.
func TestExprFastPathAgreesWithVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	atoms := []func() string{
		func() string { return "cpu " + pickOp(rng) + " " + pickNum(rng) },
		func() string { return pickNum(rng) + " " + pickOp(rng) + " cpu" },
		func() string { return "bytes " + pickOp(rng) + " " + pickNum(rng) },
		func() string { return "code " + pickOp(rng) + " " + pickNum(rng) },
		func() string { return "load " + pickOp(rng) + " " + pickNum(rng) },
		func() string {
			return "region " + pickOp(rng) + ` "` + []string{"eu", "us", "", "eu-west"}[rng.IntN(4)] + `"`
		},
		func() string { return "note " + pickOp(rng) + ` "n` + fmt.Sprint(rng.IntN(3)) + `"` },
		func() string {
			return []string{"note", "code", "load", "ok"}[rng.IntN(4)] + []string{" == nil", " != nil"}[rng.IntN(2)]
		},
		func() string {
			return "ok " + []string{"==", "!="}[rng.IntN(2)] + []string{" true", " false"}[rng.IntN(2)]
		},
		func() string { return []string{"true", "false"}[rng.IntN(2)] },
		func() string { return "(load ?? 0) > 1" }, // not native: the VM runs all
	}
	var expr func(depth int) string
	expr = func(depth int) string {
		if depth == 0 || rng.IntN(3) == 0 {
			return atoms[rng.IntN(len(atoms))]()
		}
		switch rng.IntN(5) {
		case 0:
			return "!(" + expr(depth-1) + ")"
		case 1, 2:
			return "(" + expr(depth-1) + " && " + expr(depth-1) + ")"
		}
		return "(" + expr(depth-1) + " or " + expr(depth-1) + ")"
	}
	schema := planTopic().Schema
	native, nullFallbacks := 0, 0
	for range 400 {
		src := expr(3)
		w, err := compileWhere(src, schema)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if w.fast != nil {
			native++
		}
		m := newMatcher(w)
		for range 30 {
			vals := map[int]any{
				fRegion: []string{"eu", "us", "", "eu-west"}[rng.IntN(4)],
				fCPU:    []float64{-1, 0, 0.5, 1, 2, 100}[rng.IntN(6)],
				fBytes:  int64(rng.IntN(5) - 1),
			}
			if rng.IntN(2) == 0 {
				vals[fNote] = fmt.Sprint("n", rng.IntN(3))
			}
			if rng.IntN(2) == 0 {
				vals[fCode] = int64(rng.IntN(4) - 1)
			}
			if rng.IntN(2) == 0 {
				vals[fLoad] = float64(rng.IntN(4)) - 0.5
			}
			if rng.IntN(2) == 0 {
				vals[fOK] = rng.IntN(2) == 0
			}
			e := event(1, "x", vals)
			got, gotErr := m.Match(e)
			want, wantErr := m.run(e)
			if got != want || (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("%s on %v: native %v, %v; VM %v, %v", src, vals, got, gotErr, want, wantErr)
			}
			if w.fast != nil {
				if _, ok := w.fast(e.Values); !ok {
					nullFallbacks++
				}
			}
		}
	}
	t.Logf("%d of 400 expressions native; %d evaluations fell back on a null", native, nullFallbacks)
	if native < 200 || nullFallbacks == 0 {
		t.Errorf("the generator does not exercise the native path (%d native, %d fallbacks)", native, nullFallbacks)
	}
}

func pickOp(rng *rand.Rand) string {
	return []string{"==", "!=", "<", "<=", ">", ">="}[rng.IntN(6)]
}

func pickNum(rng *rand.Rand) string {
	return []string{"0", "1", "-1", "0.5", "2", "100", "1.0", "-0.5"}[rng.IntN(8)]
}
