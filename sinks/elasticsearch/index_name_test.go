package elasticsearch

import (
	"testing"
	"time"
)

func TestIndexPattern(t *testing.T) {
	us := time.Date(2024, 3, 1, 7, 5, 0, 0, time.UTC).UnixMicro()
	f := func(pattern, index, wildcard, template string) {
		t.Helper()
		p, err := parseIndexPattern(pattern)
		if err != nil {
			t.Fatalf("%q: %v", pattern, err)
		}
		if got := p.index("metrics", us); got != index {
			t.Errorf("%q: index %q, want %q", pattern, got, index)
		}
		if got := p.wildcard("metrics"); got != wildcard {
			t.Errorf("%q: wildcard %q, want %q", pattern, got, wildcard)
		}
		if got := p.templateName("metrics"); got != template {
			t.Errorf("%q: template %q, want %q", pattern, got, template)
		}
	}
	f("", "metrics", "metrics", "metrics")
	f("{name}", "metrics", "metrics", "metrics")
	f("{name}-{yyyy.MM.dd}", "metrics-2024.03.01", "metrics-*", "metrics")
	f("{name}-{yyyy.MM}", "metrics-2024.03", "metrics-*", "metrics")
	f("{name}-{yyyy}", "metrics-2024", "metrics-*", "metrics")
	f("archive-{name}-{yyyy-MM-dd_HH}", "archive-metrics-2024-03-01_07", "archive-metrics-*", "archive-metrics")

	for _, bad := range []string{"{name", "{name}}", "{yyyy.mm}", "{host}", "{}"} {
		if _, err := parseIndexPattern(bad); err == nil {
			t.Errorf("parseIndexPattern(%q) accepted", bad)
		}
	}
}
