package elasticsearch

import (
	"strings"
	"testing"
)

// FuzzIndexPattern parses index patterns (a sink's index key): no panic,
// and for every pattern that parses, each index it names matches the
// wildcard its template is installed under, whatever the event time.
func FuzzIndexPattern(f *testing.F) {
	for _, s := range []string{"", "{name}", "{name}-{yyyy.MM.dd}", "logs-{yyyy_MM}-{name}", "{name}{HH}", "{", "}", "{yy}", "a*b-{name}"} {
		f.Add(s, int64(1764950000123456))
	}
	f.Fuzz(func(t *testing.T, pattern string, us int64) {
		p, err := parseIndexPattern(pattern)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		us = max(min(us, 253402300799999999), -62135596800000000) // event times ingest accepts
		idx := p.index("metrics", us)
		if w := p.wildcard("metrics"); !globMatch(w, idx) {
			t.Fatalf("pattern %q: index %q is not matched by its wildcard %q", pattern, idx, w)
		}
	})
}

// globMatch reports whether s matches pattern, where '*' is any run of
// characters (as index patterns of templates).
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
