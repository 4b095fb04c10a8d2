package sqlquery

import (
	"testing"
	"time"
)

func TestLineCol(t *testing.T) {
	f := func(q string, off, line, col int) {
		t.Helper()
		if l, c := lineCol(q, off); l != line || c != col {
			t.Errorf("lineCol(%q, %d) = %d:%d, want %d:%d", q, off, l, c, line, col)
		}
	}
	f("SELECT 1", 0, 1, 1)
	f("SELECT 1", 7, 1, 8)
	f("SELECT *\nFORM x", 14, 2, 6)
	f("SELECT 'é'\nFROM x", 14, 2, 3) // columns count characters
}

func TestPositioned(t *testing.T) {
	f := func(q, msg, text string, line, col int) {
		t.Helper()
		gt, gl, gc := positioned(q, msg)
		if gt != text || gl != line || gc != col {
			t.Errorf("positioned(%q) = %q %d:%d, want %q %d:%d", msg, gt, gl, gc, text, line, col)
		}
	}
	f("SELECT *\nFROM m\nWHERE nosuch = 1",
		"Binder Error: Referenced column \"nosuch\" not found in FROM clause!\n\nLINE 3: WHERE nosuch = 1\n              ^",
		"Binder Error: Referenced column \"nosuch\" not found in FROM clause!", 3, 7)
	// A long line is shown as a window, cut with "...".
	long := "SELECT a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x, y, z, nosuch FROM m"
	f(long, "Binder Error: x\n\nLINE 1: ...s, t, u, v, w, x, y, z, nosuch FROM m\n                                   ^",
		"Binder Error: x", 1, 86)
	f("SELECT 1", "Conversion Error: no position", "Conversion Error: no position", 0, 0)
}

func TestCheckParsed(t *testing.T) {
	refs, err := checkParsed("WITH a AS (SELECT 1) SELECT * FROM a, lake.m",
		[]byte(`{"error":false,"statements":[{"node":{"cte_map":{"map":[{"key":"a","value":{}}]},
		"from_table":{"type":"JOIN","left":{"type":"BASE_TABLE","schema_name":"","table_name":"a","query_location":35},
		"right":{"type":"BASE_TABLE","schema_name":"lake","table_name":"m","query_location":38}}}}]}`), time.Now())
	if err != nil || len(refs) != 1 || refs[0].String() != "lake.m" || refs[0].at != 38 {
		t.Fatalf("refs %+v, err %v; want lake.m at 38 (the CTE is no table)", refs, err)
	}
	cases := []struct {
		q, js string
		kind  Kind
		msg   string
	}{
		{"COPY m TO 'x'", `{"error":true,"error_type":"not implemented","error_message":"Only SELECT statements can be serialized to json!"}`,
			NotReadOnly, `only a read-only query is allowed (SELECT, WITH … SELECT, FROM …, VALUES); "COPY" is not one`},
		{"SELECT 1; SELECT 2", `{"error":false,"statements":[{},{}]}`, NotReadOnly, "one statement at a time: the query has 2"},
		{"SELECT * FORM x", `{"error":true,"error_type":"parser","error_message":"syntax error at or near \"x\"","position":"14"}`,
			Invalid, `line 1, column 15: syntax error: at or near "x"`},
	}
	for _, c := range cases {
		_, err := checkParsed(c.q, []byte(c.js), time.Now())
		if err == nil || err.Kind != c.kind || err.Error() != c.msg {
			t.Errorf("%q: %v, want kind %d %q", c.q, err, c.kind, c.msg)
		}
	}
}
