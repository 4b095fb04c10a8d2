package expr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// testSchema has a required field of each type expressions compare and
// optional fields of each type (package testtopic).
var testSchema = testtopic.Schema()

// testEvent builds an event of testSchema; vals maps field positions to
// values, other fields are null.
func testEvent(vals map[int]any) *event.Event { return testtopic.Event(1, "x", vals) }

func TestExprCheckWhere(t *testing.T) {
	schema := testSchema
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
		var ee *Error
		if !errors.As(err, &ee) {
			t.Errorf("CheckWhere(%q) = %v, want an *Error", c.where, err)
			continue
		}
		if !strings.Contains(ee.Msg, c.msg) || ee.Line != 1 || ee.Col < 1 {
			t.Errorf("CheckWhere(%q) = %q at %d:%d, want %q", c.where, ee.Msg, ee.Line, ee.Col, c.msg)
		}
	}
	// The column points at the problem.
	var ee *Error
	if errors.As(CheckWhere(`cpu > 1 && region == 1`, schema), &ee) && ee.Col != 19 {
		t.Errorf("column %d, want 19: %v\n%s", ee.Col, ee, ee.Snippet)
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
	schema := testSchema
	native, nullFallbacks := 0, 0
	for range 400 {
		src := expr(3)
		w, err := Compile(src, schema)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if w.fast != nil {
			native++
		}
		m := w.NewMatcher()
		var evs []*event.Event
		for range 30 {
			vals := map[int]any{
				testtopic.Region: []string{"eu", "us", "", "eu-west"}[rng.IntN(4)],
				testtopic.CPU:    []float64{-1, 0, 0.5, 1, 2, 100}[rng.IntN(6)],
				testtopic.Bytes:  int64(rng.IntN(5) - 1),
			}
			if rng.IntN(2) == 0 {
				vals[testtopic.Note] = fmt.Sprint("n", rng.IntN(3))
			}
			if rng.IntN(2) == 0 {
				vals[testtopic.Code] = int64(rng.IntN(4) - 1)
			}
			if rng.IntN(2) == 0 {
				vals[testtopic.Load] = float64(rng.IntN(4)) - 0.5
			}
			if rng.IntN(2) == 0 {
				vals[testtopic.OK] = rng.IntN(2) == 0
			}
			e := testEvent(vals)
			evs = append(evs, e)
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
		checkFilter(t, src, schema, m, evs)
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
