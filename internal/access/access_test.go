package access

import (
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestTokens(t *testing.T) {
	tk := New(&pipelines.Pipeline{
		Auth: pipelines.Auth{ReadTokens: []string{"r"}, AdminTokens: []string{"a"}},
		Topics: []pipelines.Topic{
			{Name: "m", WriteTokens: []string{"w", ""}},
			{Name: "open"},
		},
	})
	for _, c := range []struct {
		token string
		scope Scope
		topic string
		want  bool
	}{
		{"r", Read, "", true},
		{"a", Read, "", true},
		{"w", Read, "", false},
		{"", Read, "", false},
		{"r ", Read, "", false},
		{"w", Write, "m", true},
		{"r", Write, "m", false},
		{"a", Write, "m", false},
		{"", Write, "m", false},
		{"", Write, "open", true},
		{"anything", Write, "open", true},
		{"a", Admin, "", true},
		{"r", Admin, "", false},
		{"w", Admin, "", false},
		{"", Admin, "", false},
	} {
		if got := tk.May(c.token, c.scope, c.topic); got != c.want {
			t.Errorf("May(%q, %s, %q) = %v, want %v", c.token, c.scope, c.topic, got, c.want)
		}
	}
	if r, a, w := tk.Scopes("w"); r || a || !w {
		t.Errorf("Scopes(w) = %v %v %v", r, a, w)
	}
	if r, a, w := tk.Scopes("a"); r || !a || w {
		t.Errorf("Scopes(a) = %v %v %v", r, a, w)
	}
}

// TestAdminOpenOnlyWithoutAnyToken: a pipeline without tokens is open;
// one token anywhere closes administration, never reads or other topics.
func TestAdminOpenOnlyWithoutAnyToken(t *testing.T) {
	open := New(&pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "m"}}})
	for _, s := range []Scope{Read, Write, Admin} {
		if !open.Open(s, "m") || !open.May("", s, "m") {
			t.Errorf("pipeline without tokens: %s not open", s)
		}
	}
	for name, p := range map[string]*pipelines.Pipeline{
		"read tokens":  {Auth: pipelines.Auth{ReadTokens: []string{"r"}}, Topics: []pipelines.Topic{{Name: "m"}}},
		"write tokens": {Topics: []pipelines.Topic{{Name: "m"}, {Name: "n", WriteTokens: []string{"w"}}}},
	} {
		tk := New(p)
		if tk.Open(Admin, "") || tk.May("", Admin, "") {
			t.Errorf("%s: administration open", name)
		}
		if !tk.Open(Write, "m") {
			t.Errorf("%s: topic m without write tokens not open", name)
		}
	}
}
