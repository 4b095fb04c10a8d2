package pipelines

import (
	"errors"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{File: "p.yaml", Line: 12, Col: 11, Path: "views[0].window.size", Msg: "must be positive, got 0s"}, "p.yaml:12:11: views[0].window.size: must be positive, got 0s"},
		{Error{File: "p.yaml", Line: 2, Col: 1, Msg: "invalid YAML: x"}, "p.yaml:2:1: invalid YAML: x"},
		{Error{File: "p.yaml", Msg: "invalid YAML: x"}, "p.yaml: invalid YAML: x"},
		{Error{Line: 3, Col: 4, Path: "name", Msg: "m"}, "3:4: name: m"},
		{Error{Path: "name", Msg: "m"}, "name: m"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestErrorsSortedAndUnwrapped(t *testing.T) {
	es := Errors{
		{File: "p.yaml", Line: 9, Col: 1, Msg: "c"},
		{File: "p.yaml", Line: 2, Col: 7, Msg: "b"},
		{File: "p.yaml", Line: 2, Col: 3, Msg: "a"},
		{File: "p.yaml", Line: 2, Col: 3, Msg: "a2"},
	}
	es.sort()
	want := "p.yaml:2:3: a\np.yaml:2:3: a2\np.yaml:2:7: b\np.yaml:9:1: c"
	if got := es.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var err error = es
	var one *Error
	if !errors.As(err, &one) || one.Msg != "a" {
		t.Errorf("errors.As found %v", one)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "partitions", "retention", "max_bytes", "key", "time", "schema", "write_tokens"}
	for _, c := range []struct {
		in, want string
	}{
		{"partitons", "partitions"},
		{"patritions", "partitions"},
		{"nmae", "name"},
		{"kye", "key"},
		{"Schema", "schema"},
		{"max_byte", "max_bytes"},
		{"ke", "key"},
		{"x", ""},
		{"id", ""},
		{"retentionperiod", ""},
		{"name", ""},
	} {
		got, ok := suggest(c.in, keys)
		if !ok {
			got = ""
		}
		if got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "abc", 0},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"partitons", "partitions", 1},
		{"ca", "abc", 3},
		{"héllo", "hello", 1},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestPaths(t *testing.T) {
	for _, c := range []struct{ parent, key, want string }{
		{"", "version", "version"},
		{"topics[0]", "name", "topics[0].name"},
		{"topics[0].schema", "user-id", "topics[0].schema.user-id"},
		{"http", "my key", `http["my key"]`},
		{"", "a.b", `["a.b"]`},
		{"x", "", `x[""]`},
	} {
		if got := keyPath(c.parent, c.key); got != c.want {
			t.Errorf("keyPath(%q, %q) = %q, want %q", c.parent, c.key, got, c.want)
		}
		if got := parentPath(c.want); got != c.parent {
			t.Errorf("parentPath(%q) = %q, want %q", c.want, got, c.parent)
		}
	}
	if got := parentPath("views[2]"); got != "views" {
		t.Errorf("parentPath(views[2]) = %q", got)
	}
}
