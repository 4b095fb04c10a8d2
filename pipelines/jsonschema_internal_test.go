package pipelines

import (
	"reflect"
	"regexp"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
)

// TestEveryFieldDocumented keeps the `doc` tags, which become the schema's
// descriptions, complete.
func TestEveryFieldDocumented(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		if seen[st] {
			return
		}
		seen[st] = true
		for _, f := range fieldsOf(st) {
			if f.doc == "" {
				t.Errorf("%s.%s has no doc tag", st.Name(), st.Field(f.index).Name)
			}
			ft := st.Field(f.index).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Pipeline]())
	walk(reflect.TypeFor[fieldSpec]())
}

func TestSchemaPatternsAgreeWithParsers(t *testing.T) {
	dur := regexp.MustCompile(durationPattern)
	for _, s := range []string{"90s", "5m", "168h", "7d", "1d12h", "1.5s", ".5s", "0", "-1m", "+2h", "500ms", "3us", "3µs", "", "-", "90", "d", "1.5d", "5x", "7 days", "1d-1h", "0.s"} {
		_, err := ParseDuration(s)
		if got := dur.MatchString(s); got != (err == nil) {
			t.Errorf("duration %q: pattern says %v, ParseDuration says %v", s, got, err)
		}
	}
	size := regexp.MustCompile(sizePattern)
	for _, s := range []string{"1024", "64KiB", "10MB", "2GiB", "1 TiB", "10kb", "100B", "", "GiB", "-1", "1.5GiB", "10 gigs", "10  MB"} {
		_, err := ParseByteSize(s)
		if got := size.MatchString(s); got != (err == nil) {
			t.Errorf("size %q: pattern says %v, ParseByteSize says %v", s, got, err)
		}
	}
	call := regexp.MustCompile(aggregatePattern)
	var examples []string
	for _, f := range aggregate.Funcs() {
		examples = append(examples, f.Example)
	}
	for _, s := range append(examples, "count()", " count( ) ", "sum(bytes)", "quantile(cpu, 0.95)", "quantile(cpu,1e-3)", "first(Url)", "count", "count(x)", "sum()", "sum(a, b)", "median(x)", "quantile(cpu)", "max(a.b)", "Sum(x)") {
		_, _, _, msg := parseAggregate(s)
		if got := call.MatchString(s); got != (msg == "") {
			t.Errorf("aggregate %q: pattern says %v, parseAggregate says %q", s, got, msg)
		}
	}
	hp := regexp.MustCompile(hostPortPattern)
	for _, s := range []string{"127.0.0.1:8080", ":8080", "[::1]:8080", "localhost:0", "8080", "host:", "::1:80", "a:b:80"} {
		v := &validator{pos: positions{val: map[string]Pos{}, bad: map[string]bool{}}}
		v.hostPort("x", s)
		if got := hp.MatchString(s); got != (len(v.errs) == 0) {
			t.Errorf("host:port %q: pattern says %v, validation says %v", s, got, v.errs)
		}
	}
}
