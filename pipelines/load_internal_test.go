package pipelines

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestAliasExpansionIsBounded(t *testing.T) {
	// Three aliases of a topic whose schema has 40 fields: about 170 nodes
	// against a budget of 100, which runs out in the third alias, at f6.
	var b strings.Builder
	b.WriteString("version: 1\nname: p\ntopics:\n  - &t\n    name: m\n    schema:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "      f%d: long\n", i)
	}
	b.WriteString("  - *t\n  - *t\n  - *t\n")
	_, err := parse("p.yaml", []byte(b.String()), nil, nil, 100)
	want := "p.yaml:13:11: the file is too complex to decode (too many nodes after expanding aliases)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestParseAggregate(t *testing.T) {
	for _, c := range []struct {
		in        string
		fn, field string
		q         float64
		msg       string
	}{
		{in: "count()", fn: "count"},
		{in: "  count( ) ", fn: "count"},
		{in: "sum(bytes)", fn: "sum", field: "bytes"},
		{in: "count_distinct(host)", fn: "count_distinct", field: "host"},
		{in: "quantile(cpu, 0.95)", fn: "quantile", field: "cpu", q: 0.95},
		{in: "quantile(cpu,1e-3)", fn: "quantile", field: "cpu", q: 0.001},
		{in: "first(Url)", fn: "first", field: "Url"},
		{in: "count", msg: `invalid aggregate "count": want a call like count(), sum(bytes) or quantile(cpu, 0.95)`},
		{in: "", msg: `invalid aggregate "": want a call like count(), sum(bytes) or quantile(cpu, 0.95)`},
		{in: "(x)", msg: `unknown aggregate function ""; want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "Sum(x)", msg: `unknown aggregate function "Sum" (did you mean "sum"?); want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "median(x)", msg: `unknown aggregate function "median"; want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "count(*)", msg: `count() takes no arguments; use count_distinct(field) to count distinct values`},
		{in: "max(a.b)", msg: `invalid field name "a.b" in "max(a.b)"`},
		{in: "quantile(cpu, 0.5, 1)", msg: `quantile takes a field and q, e.g. quantile(cpu, 0.95); got 3 arguments`},
	} {
		fn, field, q, msg := parseAggregate(c.in)
		if fn != c.fn || field != c.field || q != c.q || msg != c.msg {
			t.Errorf("parseAggregate(%q) = %q, %q, %v, %q; want %q, %q, %v, %q", c.in, fn, field, q, msg, c.fn, c.field, c.q, c.msg)
		}
	}
}

// TestDefaultsParse checks the `default` tags of every struct of the format,
// including those of list elements, which a small file may not reach.
func TestDefaultsParse(t *testing.T) {
	for _, v := range []any{&Pipeline{}, &Topic{}, &View{}, &Sink{}, &fieldSpec{}} {
		d := &decoder{file: "p.yaml"}
		d.defaults(reflect.ValueOf(v).Elem(), "")
		if len(d.errs) > 0 {
			t.Errorf("%T: %v", v, d.errs)
		}
	}
}

// TestSinkWithoutSinkTypes: a program that passes no sink types refuses
// every sink, naming why.
func TestSinkWithoutSinkTypes(t *testing.T) {
	src := "version: 1\nname: p\ntopics:\n  - name: m\n    schema: {ts: timestamp}\nsinks:\n  - {name: s, type: duckdb, from: [m]}\n"
	_, err := Parse("p.yaml", []byte(src), nil, nil)
	want := `p.yaml:7:21: sinks[0].type: unknown sink type "duckdb": no sink types are available to this program`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
