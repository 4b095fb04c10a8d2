package plan

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// planTopic is the ops-metrics example topic plus optional fields of each
// type (package testtopic).
func planTopic() *pipelines.Topic {
	return &pipelines.Topic{Name: "metrics", Schema: testtopic.Schema()}
}

func minutes(n int) pipelines.Duration { return pipelines.Duration(time.Duration(n) * time.Minute) }

// designView is the view of the ops-metrics example.
func designView() *pipelines.View {
	return &pipelines.View{
		Name: "cpu_by_region", From: "metrics", Where: "cpu >= 0",
		GroupBy: []string{"region"},
		Window:  pipelines.Window{Type: "tumbling", Size: minutes(1), Lateness: pipelines.Duration(30 * time.Second)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"},
			{Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "max_cpu", Func: "max", Field: "cpu"},
			{Name: "bytes", Func: "sum", Field: "bytes"},
			{Name: "hosts", Func: "count_distinct", Field: "host"},
			{Name: "p95_cpu", Func: "quantile", Field: "cpu", Arg: 0.95},
		},
	}
}

func mustCompile(t testing.TB, v *pipelines.View) *Plan {
	t.Helper()
	p, err := Compile(v, planTopic())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newEvent builds an event of planTopic (testtopic.Event).
var newEvent = testtopic.Event

func TestPlanCompileErrors(t *testing.T) {
	f := func(name string, change func(v *pipelines.View), part, want string) {
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
	f("window type", func(v *pipelines.View) { v.Window.Type = "sliding" }, "window", `unknown window type "sliding"`)
	f("no size", func(v *pipelines.View) { v.Window.Size = 0 }, "window", "size must be at least 1µs")
	f("slide > size", func(v *pipelines.View) {
		v.Window = pipelines.Window{Type: "hopping", Size: minutes(1), Slide: minutes(2)}
	}, "window", "longer than size")
	f("too many hops", func(v *pipelines.View) {
		v.Window = pipelines.Window{Type: "hopping", Size: minutes(60 * 24), Slide: pipelines.Duration(time.Second)}
	}, "window", "more than 1024 windows")
	f("no gap", func(v *pipelines.View) { v.Window = pipelines.Window{Type: "session"} }, "window", "gap must be")
	f("where type", func(v *pipelines.View) { v.Where = `region > 3` }, "where", "mismatched types string and int")
	f("where not bool", func(v *pipelines.View) { v.Where = `cpu + 1` }, "where", "expected bool")
	f("where unknown", func(v *pipelines.View) { v.Where = `cpux > 1` }, "where", "unknown name cpux")
	f("group unknown", func(v *pipelines.View) { v.GroupBy = []string{"zone"} }, "group_by", `unknown field "zone"`)
	f("group twice", func(v *pipelines.View) { v.GroupBy = []string{"region", "region"} }, "group_by", "twice")
	f("no aggregates", func(v *pipelines.View) { v.Aggregates = nil }, "aggregates", "at least one")
	f("unknown func", func(v *pipelines.View) { v.Aggregates[1].Func = "median" }, `aggregate "avg_cpu"`, `unknown function "median"`)
	f("unknown field", func(v *pipelines.View) { v.Aggregates[1].Field = "cpux" }, `aggregate "avg_cpu"`, `unknown field "cpux"`)
	f("sum string", func(v *pipelines.View) { v.Aggregates[3].Field = "host" }, `aggregate "bytes"`, `field "host" is string; sum needs long, int or double`)
	f("avg bool", func(v *pipelines.View) { v.Aggregates[1].Field = "ok" }, `aggregate "avg_cpu"`, "avg needs long")
	f("quantile q", func(v *pipelines.View) { v.Aggregates[5].Arg = 1.5 }, `aggregate "p95_cpu"`, "q must be between 0 and 1")
	f("quantile NaN", func(v *pipelines.View) { v.Aggregates[5].Arg = math.NaN() }, `aggregate "p95_cpu"`, "q must be between 0 and 1")
	f("no field", func(v *pipelines.View) { v.Aggregates[1].Field = "" }, `aggregate "avg_cpu"`, "avg() needs a field")
	f("dup name", func(v *pipelines.View) { v.Aggregates[1].Name = "events" }, `aggregate "events"`, "name used twice")
	f("other topic", func(v *pipelines.View) { v.From = "logs" }, "from", `reads topic "logs"`)
}

func TestPlanColumns(t *testing.T) {
	v := designView()
	v.Aggregates = append(v.Aggregates,
		pipelines.Aggregate{Name: "sum_cpu", Func: "sum", Field: "cpu"},
		pipelines.Aggregate{Name: "min_host", Func: "min", Field: "host"},
		pipelines.Aggregate{Name: "first_ts", Func: "first", Field: "ts"},
		pipelines.Aggregate{Name: "last_ok", Func: "last", Field: "ok"},
		pipelines.Aggregate{Name: "n_code", Func: "count", Field: "code"},
		pipelines.Aggregate{Name: "avg_code", Func: "avg", Field: "code"},
	)
	p := mustCompile(t, v)
	want := []Column{
		{"events", event.TypeLong}, {"avg_cpu", event.TypeDouble}, {"max_cpu", event.TypeDouble}, {"bytes", event.TypeLong},
		{"hosts", event.TypeLong}, {"p95_cpu", event.TypeDouble}, {"sum_cpu", event.TypeDouble}, {"min_host", event.TypeString},
		{"first_ts", event.TypeTimestamp}, {"last_ok", event.TypeBool}, {"n_code", event.TypeLong}, {"avg_code", event.TypeDouble},
	}
	if got := p.Columns(); !slices.Equal(got, want) {
		t.Errorf("Columns() = %v, want %v", got, want)
	}
	// The validator's ViewSchema must agree with what Finalize produces.
	vs := pipelines.ViewSchema(v, planTopic())
	for i, c := range p.Columns() {
		if f := vs[len(vs)-len(want)+i]; f.Name != c.Name || f.Type != c.Type {
			t.Errorf("ViewSchema has %s %s, plan %s %s", f.Name, f.Type, c.Name, c.Type)
		}
	}
	if got := p.GroupBy(); !slices.Equal(got, []Column{{"region", event.TypeString}}) {
		t.Errorf("GroupBy() = %v", got)
	}
}

func TestPlanKey(t *testing.T) {
	v := designView()
	v.GroupBy = []string{"region", "bytes", "cpu", "ok", "note", "ts"}
	p := mustCompile(t, v)
	f := func(vals map[int]any) {
		t.Helper()
		e := newEvent(1_700_000_000_000_000, "a", vals)
		key := p.Key(e, make([]byte, 0, 64))
		got, err := p.DecodeKey(key)
		if err != nil {
			t.Fatalf("DecodeKey(%x): %v", key, err)
		}
		want := []event.Value{e.Values[testtopic.Region], e.Values[testtopic.Bytes], e.Values[testtopic.CPU], e.Values[testtopic.OK], e.Values[testtopic.Note], e.Values[testtopic.TS]}
		want[2].F = event.CanonicalFloat(want[2].F)
		if !slices.Equal(got, want) {
			t.Errorf("DecodeKey(Key(%v)) = %v, want %v", vals, got, want)
		}
	}
	f(map[int]any{testtopic.Region: "eu-west", testtopic.Bytes: int64(-5), testtopic.CPU: 12.5, testtopic.OK: true, testtopic.Note: "x"})
	f(map[int]any{testtopic.Region: "", testtopic.Bytes: int64(math.MaxInt64), testtopic.CPU: math.Inf(-1), testtopic.OK: false})
	f(map[int]any{testtopic.Region: "日本", testtopic.Bytes: int64(math.MinInt64), testtopic.CPU: -0.0})

	// Equal values give equal keys, different values different keys.
	k := func(vals map[int]any) string { return string(p.Key(newEvent(0, "", vals), nil)) }
	if k(map[int]any{testtopic.CPU: 0.0}) != k(map[int]any{testtopic.CPU: math.Copysign(0, -1)}) {
		t.Error("-0 and 0 group apart")
	}
	if k(map[int]any{testtopic.Region: "a", testtopic.Note: "bc"}) == k(map[int]any{testtopic.Region: "ab", testtopic.Note: "c"}) {
		t.Error("keys are ambiguous across field boundaries")
	}
	if k(map[int]any{testtopic.Note: ""}) == k(map[int]any{}) {
		t.Error("an empty string and null share a key")
	}
	// A key is a function of the group-by values only.
	e1 := newEvent(1, "x", map[int]any{testtopic.Region: "eu", testtopic.CPU: 1.0, testtopic.Host: "a"})
	e2 := newEvent(1, "y", map[int]any{testtopic.Region: "eu", testtopic.CPU: 1.0, testtopic.Host: "b"})
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
	e := newEvent(0, "a", map[int]any{testtopic.Region: "eu-west-1"})
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = p.Key(e, buf) }); n != 0 {
		t.Errorf("Key allocates %v times", n)
	}
}

func TestPlanReads(t *testing.T) {
	v := designView()
	v.Where = `cpu >= 0 && host != "note"` // "note" is a string, not a field
	fields, ids := mustCompile(t, v).Reads()
	var got []string
	for i, r := range fields {
		if r {
			got = append(got, planTopic().Schema[i].Name)
		}
	}
	if want := []string{"host", "region", "cpu", "bytes"}; !slices.Equal(got, want) || ids {
		t.Errorf("reads %v (ids %t), want %v (ids false)", got, ids, want)
	}
	v.Where = ""
	v.Aggregates = append(v.Aggregates, pipelines.Aggregate{Name: "last_code", Func: "last", Field: "code"})
	fields, ids = mustCompile(t, v).Reads()
	if !fields[testtopic.Code] || fields[testtopic.Note] || !ids {
		t.Errorf("with last(code): reads %v (ids %t), want code and ids", fields, ids)
	}
}
