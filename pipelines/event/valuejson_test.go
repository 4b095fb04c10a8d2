package event

import (
	"encoding/json"
	"testing"
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
