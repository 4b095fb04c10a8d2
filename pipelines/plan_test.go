package pipelines

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// planTopic is the DESIGN example topic plus optional fields of each type.
func planTopic() *Topic {
	return &Topic{Name: "metrics", Schema: Schema{
		{Name: "ts", Type: TypeTimestamp, Required: true},
		{Name: "host", Type: TypeString, Required: true},
		{Name: "region", Type: TypeString, Required: true},
		{Name: "cpu", Type: TypeDouble, Required: true},
		{Name: "bytes", Type: TypeLong, Required: true},
		{Name: "note", Type: TypeString},
		{Name: "code", Type: TypeInt},
		{Name: "ok", Type: TypeBool},
		{Name: "load", Type: TypeDouble},
	}}
}

// Field positions in planTopic.
const (
	fTS = iota
	fHost
	fRegion
	fCPU
	fBytes
	fNote
	fCode
	fOK
	fLoad
	nFields
)

func minutes(n int) Duration { return Duration(time.Duration(n) * time.Minute) }

// designView is the view of DESIGN.md.
func designView() *View {
	return &View{
		Name: "cpu_by_region", From: "metrics", Where: "cpu >= 0",
		GroupBy: []string{"region"},
		Window:  Window{Type: "tumbling", Size: minutes(1), Lateness: Duration(30 * time.Second)},
		Aggregates: Aggregates{
			{Name: "events", Func: "count"},
			{Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "max_cpu", Func: "max", Field: "cpu"},
			{Name: "bytes", Func: "sum", Field: "bytes"},
			{Name: "hosts", Func: "count_distinct", Field: "host"},
			{Name: "p95_cpu", Func: "quantile", Field: "cpu", Arg: 0.95},
		},
	}
}

func mustCompile(t testing.TB, v *View) *Plan {
	t.Helper()
	p, err := Compile(v, planTopic())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// event builds an event of planTopic; vals maps field positions to values
// (string, int64, int, float64, bool); other fields are null.
func event(t int64, id string, vals map[int]any) *Event {
	e := &Event{ID: id, Time: t, Values: make([]Value, nFields)}
	e.Values[fTS] = Value{I: t, Valid: true}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			e.Values[i] = Value{S: v, Valid: true}
		case int64:
			e.Values[i] = Value{I: v, Valid: true}
		case int:
			e.Values[i] = Value{I: int64(v), Valid: true}
		case float64:
			e.Values[i] = Value{F: v, Valid: true}
		case bool:
			e.Values[i] = Value{I: map[bool]int64{true: 1}[v], Valid: true}
		case nil:
		default:
			panic("unsupported value")
		}
	}
	return e
}

func TestPlanCompileErrors(t *testing.T) {
	f := func(name string, change func(v *View), part, want string) {
		t.Helper()
		v := designView()
		change(v)
		_, err := Compile(v, planTopic())
		var pe *PlanError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want a *PlanError", name, err)
		}
		if pe.View != "cpu_by_region" || pe.Part != part || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %q (part %q), want part %q and %q", name, err, pe.Part, part, want)
		}
		if !strings.HasPrefix(err.Error(), `view "cpu_by_region": `) {
			t.Errorf("%s: error %q does not name the view first", name, err)
		}
	}
	f("window type", func(v *View) { v.Window.Type = "sliding" }, "window", `unknown window type "sliding"`)
	f("no size", func(v *View) { v.Window.Size = 0 }, "window", "size must be at least 1µs")
	f("slide > size", func(v *View) { v.Window = Window{Type: "hopping", Size: minutes(1), Slide: minutes(2)} }, "window", "longer than size")
	f("too many hops", func(v *View) {
		v.Window = Window{Type: "hopping", Size: minutes(60 * 24), Slide: Duration(time.Second)}
	}, "window", "more than 1024 windows")
	f("no gap", func(v *View) { v.Window = Window{Type: "session"} }, "window", "gap must be")
	f("where type", func(v *View) { v.Where = `region > 3` }, "where", "mismatched types string and int")
	f("where not bool", func(v *View) { v.Where = `cpu + 1` }, "where", "expected bool")
	f("where unknown", func(v *View) { v.Where = `cpux > 1` }, "where", "unknown name cpux")
	f("group unknown", func(v *View) { v.GroupBy = []string{"zone"} }, "group_by", `unknown field "zone"`)
	f("group twice", func(v *View) { v.GroupBy = []string{"region", "region"} }, "group_by", "twice")
	f("no aggregates", func(v *View) { v.Aggregates = nil }, "aggregates", "at least one")
	f("unknown func", func(v *View) { v.Aggregates[1].Func = "median" }, `aggregate "avg_cpu"`, `unknown function "median"`)
	f("unknown field", func(v *View) { v.Aggregates[1].Field = "cpux" }, `aggregate "avg_cpu"`, `unknown field "cpux"`)
	f("sum string", func(v *View) { v.Aggregates[3].Field = "host" }, `aggregate "bytes"`, `field "host" is string; sum needs long, int or double`)
	f("avg bool", func(v *View) { v.Aggregates[1].Field = "ok" }, `aggregate "avg_cpu"`, "avg needs long")
	f("quantile q", func(v *View) { v.Aggregates[5].Arg = 1.5 }, `aggregate "p95_cpu"`, "q must be between 0 and 1")
	f("quantile NaN", func(v *View) { v.Aggregates[5].Arg = math.NaN() }, `aggregate "p95_cpu"`, "q must be between 0 and 1")
	f("no field", func(v *View) { v.Aggregates[1].Field = "" }, `aggregate "avg_cpu"`, "avg() needs a field")
	f("dup name", func(v *View) { v.Aggregates[1].Name = "events" }, `aggregate "events"`, "name used twice")
	f("other topic", func(v *View) { v.From = "logs" }, "from", `reads topic "logs"`)
}

func TestPlanColumns(t *testing.T) {
	v := designView()
	v.Aggregates = append(v.Aggregates,
		Aggregate{Name: "sum_cpu", Func: "sum", Field: "cpu"},
		Aggregate{Name: "min_host", Func: "min", Field: "host"},
		Aggregate{Name: "first_ts", Func: "first", Field: "ts"},
		Aggregate{Name: "last_ok", Func: "last", Field: "ok"},
		Aggregate{Name: "n_code", Func: "count", Field: "code"},
		Aggregate{Name: "avg_code", Func: "avg", Field: "code"},
	)
	p := mustCompile(t, v)
	want := []Column{
		{"events", TypeLong}, {"avg_cpu", TypeDouble}, {"max_cpu", TypeDouble}, {"bytes", TypeLong},
		{"hosts", TypeLong}, {"p95_cpu", TypeDouble}, {"sum_cpu", TypeDouble}, {"min_host", TypeString},
		{"first_ts", TypeTimestamp}, {"last_ok", TypeBool}, {"n_code", TypeLong}, {"avg_code", TypeDouble},
	}
	if got := p.Columns(); !slices.Equal(got, want) {
		t.Errorf("Columns() = %v, want %v", got, want)
	}
	// The validator's ViewSchema must agree with what Finalize produces.
	vs := ViewSchema(v, planTopic())
	for i, c := range p.Columns() {
		if f := vs[len(vs)-len(want)+i]; f.Name != c.Name || f.Type != c.Type {
			t.Errorf("ViewSchema has %s %s, plan %s %s", f.Name, f.Type, c.Name, c.Type)
		}
	}
	if got := p.GroupBy(); !slices.Equal(got, []Column{{"region", TypeString}}) {
		t.Errorf("GroupBy() = %v", got)
	}
}

func TestPlanKey(t *testing.T) {
	v := designView()
	v.GroupBy = []string{"region", "bytes", "cpu", "ok", "note", "ts"}
	p := mustCompile(t, v)
	f := func(vals map[int]any) {
		t.Helper()
		e := event(1_700_000_000_000_000, "a", vals)
		key := p.Key(e, make([]byte, 0, 64))
		got, err := p.DecodeKey(key)
		if err != nil {
			t.Fatalf("DecodeKey(%x): %v", key, err)
		}
		want := []Value{e.Values[fRegion], e.Values[fBytes], e.Values[fCPU], e.Values[fOK], e.Values[fNote], e.Values[fTS]}
		want[2].F = canonicalFloat(want[2].F)
		if !slices.Equal(got, want) {
			t.Errorf("DecodeKey(Key(%v)) = %v, want %v", vals, got, want)
		}
	}
	f(map[int]any{fRegion: "eu-west", fBytes: int64(-5), fCPU: 12.5, fOK: true, fNote: "x"})
	f(map[int]any{fRegion: "", fBytes: int64(math.MaxInt64), fCPU: math.Inf(-1), fOK: false})
	f(map[int]any{fRegion: "日本", fBytes: int64(math.MinInt64), fCPU: -0.0})

	// Equal values give equal keys, different values different keys.
	k := func(vals map[int]any) string { return string(p.Key(event(0, "", vals), nil)) }
	if k(map[int]any{fCPU: 0.0}) != k(map[int]any{fCPU: math.Copysign(0, -1)}) {
		t.Error("-0 and 0 group apart")
	}
	if k(map[int]any{fRegion: "a", fNote: "bc"}) == k(map[int]any{fRegion: "ab", fNote: "c"}) {
		t.Error("keys are ambiguous across field boundaries")
	}
	if k(map[int]any{fNote: ""}) == k(map[int]any{}) {
		t.Error("an empty string and null share a key")
	}
	// A key is a function of the group-by values only.
	e1 := event(1, "x", map[int]any{fRegion: "eu", fCPU: 1.0, fHost: "a"})
	e2 := event(1, "y", map[int]any{fRegion: "eu", fCPU: 1.0, fHost: "b"})
	if string(p.Key(e1, nil)) != string(p.Key(e2, nil)) {
		t.Error("a key depends on fields outside group_by")
	}
	for _, bad := range [][]byte{{2}, {1, 5, 'a'}, append(p.Key(e1, nil), 0)} {
		if _, err := p.DecodeKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("DecodeKey(%x) = %v, want ErrBadKey", bad, err)
		}
	}

	// No group_by: one empty key.
	v.GroupBy = nil
	p = mustCompile(t, v)
	if key := p.Key(e1, []byte("junk")); len(key) != 0 {
		t.Errorf("key without group_by = %x", key)
	}
	if vs, err := p.DecodeKey(nil); err != nil || len(vs) != 0 {
		t.Errorf("DecodeKey(empty) = %v, %v", vs, err)
	}
}

func TestPlanKeyAllocs(t *testing.T) {
	p := mustCompile(t, designView())
	e := event(0, "a", map[int]any{fRegion: "eu-west-1"})
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = p.Key(e, buf) }); n != 0 {
		t.Errorf("Key allocates %v times", n)
	}
}
