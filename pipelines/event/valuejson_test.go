package event

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\`, "tab\tnl\ncr\r\x00\x1f", "é ✓ 😀", "bad \xff\xfe utf8", "\u2028\u2029", "<&>"} {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q encodes to invalid JSON %s: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q round-trips to %q, encoding/json to %q", s, back, wantBack)
		}
	}
	// Bytes that decide Elasticsearch document ids: keep them stable.
	for s, want := range map[string]string{
		"a\u2028b\u2029": `"a\u2028b\u2029"`,
		"<&>":            `"<&>"`,
		"\x01\xff":       `"\u0001\ufffd"`,
	} {
		if got := string(AppendJSONString(nil, s)); got != want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestTimesPrintAsRFC3339: every time written is RFC 3339 with a four-digit
// year; times beyond are written as the nearest printable one.
func TestTimesPrintAsRFC3339(t *testing.T) {
	for _, c := range []struct {
		us   int64
		want string
	}{
		{0, "1970-01-01T00:00:00Z"},
		{253402300799999999, "9999-12-31T23:59:59.999999Z"},
		{253402300800000000, "9999-12-31T23:59:59.999999Z"}, // a window ending at 10000-01-01
		{math.MaxInt64, "9999-12-31T23:59:59.999999Z"},
		{-62135596800000000, "0001-01-01T00:00:00Z"},
		{-62167219200000000, "0000-01-01T00:00:00Z"},
		{-62167219200000001, "0000-01-01T00:00:00Z"},
		{math.MinInt64, "0000-01-01T00:00:00Z"},
	} {
		got := FormatTime(c.us)
		js := string(AppendValueJSON(nil, TypeTimestamp, Value{I: c.us, Valid: true}))
		if got != c.want || js != `"`+c.want+`"` {
			t.Errorf("%d: %s and %s, want %s", c.us, got, js, c.want)
		}
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("%d: %s is not RFC 3339: %v", c.us, got, err)
		}
		if b, err := json.Marshal(Time(c.us)); err != nil || string(b) != `"`+c.want+`"` {
			t.Errorf("%d: json %s %v", c.us, b, err)
		}
	}
}
