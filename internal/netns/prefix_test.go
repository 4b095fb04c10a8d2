package netns

import "testing"

// TestNamePrefix: LF_NETNS_PREFIX replaces "lfn" when it is one to three
// lowercase letters, and is refused, naming it, otherwise.
func TestNamePrefix(t *testing.T) {
	for _, c := range []struct {
		env, want string
		ok        bool
	}{{"", "lfn", true}, {"to", "to", true}, {"abc", "abc", true}, {"abcd", "", false}, {"T0", "", false}, {"a-", "", false}} {
		t.Setenv("LF_NETNS_PREFIX", c.env)
		got, err := namePrefix()
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("LF_NETNS_PREFIX=%q: %q, %v; want %q, ok %v", c.env, got, err, c.want, c.ok)
		}
	}
}
