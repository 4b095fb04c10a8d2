package sqlquery

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// tableRef is a table the query names, where it names it.
type tableRef struct {
	catalog, schema, name string
	at                    int // byte offset in the SQL; -1 unknown
	// bounds are what the WHERE of its SELECT says of its columns' times
	// (tableBounds).
	bounds bounds
}

func (r tableRef) String() string {
	if r.schema != "" {
		return r.schema + "." + r.name
	}
	return r.name
}

// parsed is DuckDB's json_serialize_sql answer.
type parsed struct {
	Error        bool              `json:"error"`
	ErrorType    string            `json:"error_type"`
	ErrorMessage string            `json:"error_message"`
	Position     json.Number       `json:"position"`
	Statements   []json.RawMessage `json:"statements"`
}

// checkParsed turns DuckDB's parse of q into the tables it names, or an
// Error: syntax errors with their position, anything but one SELECT refused.
// now is the time the query is read, for the bounds of its tables.
// json_serialize_sql serializes SELECT statements only, which is the rule.
func checkParsed(q string, js []byte, now time.Time) ([]tableRef, *Error) {
	var p parsed
	if err := json.Unmarshal(js, &p); err != nil {
		return nil, &Error{Kind: Internal, Msg: "reading the parse of the query: " + err.Error()}
	}
	if p.Error {
		if p.ErrorType == "parser" {
			e := &Error{Kind: Invalid, Msg: "syntax error: " + strings.TrimPrefix(p.ErrorMessage, "syntax error ")}
			if n, err := p.Position.Int64(); err == nil {
				e.Line, e.Column = lineCol(q, int(n))
			}
			return nil, e
		}
		return nil, notReadOnly(q)
	}
	switch len(p.Statements) {
	case 0:
		return nil, &Error{Kind: Invalid, Msg: "the query is empty"}
	case 1:
	default:
		return nil, &Error{Kind: NotReadOnly, Msg: "one statement at a time: the query has " + strconv.Itoa(len(p.Statements))}
	}
	var tree any
	if err := json.Unmarshal(p.Statements[0], &tree); err != nil {
		return nil, &Error{Kind: Internal, Msg: "reading the parse of the query: " + err.Error()}
	}
	ctes := map[string]bool{}
	var refs []tableRef
	tb := tableBounds(tree, now)
	walk(tree, func(m map[string]any) {
		if cm, ok := m["cte_map"].(map[string]any); ok {
			if entries, ok := cm["map"].([]any); ok {
				for _, e := range entries {
					if em, ok := e.(map[string]any); ok {
						if k, ok := em["key"].(string); ok {
							ctes[strings.ToLower(k)] = true
						}
					}
				}
			}
		}
		if m["type"] != "BASE_TABLE" {
			return
		}
		r := tableRef{at: -1}
		r.catalog, _ = m["catalog_name"].(string)
		r.schema, _ = m["schema_name"].(string)
		r.name, _ = m["table_name"].(string)
		if loc, ok := m["query_location"].(float64); ok && loc >= 0 && loc < float64(len(q)) {
			r.at = int(loc)
			r.bounds = tb[r.at]
		}
		refs = append(refs, r)
	})
	out := refs[:0]
	for _, r := range refs {
		if r.schema == "" && r.catalog == "" && ctes[strings.ToLower(r.name)] {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func notReadOnly(q string) *Error {
	first := strings.ToUpper(strings.Fields(q + " ?")[0])
	return &Error{Kind: NotReadOnly, Msg: "only a read-only query is allowed (SELECT, WITH … SELECT, FROM …, VALUES); " +
		strconv.Quote(strings.Trim(first, ";(")) + " is not one"}
}

// walk calls fn on every object of a decoded JSON tree.
func walk(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

// lineCol turns a byte offset of q into a 1-based line and column (in
// characters).
func lineCol(q string, off int) (line, col int) {
	if off < 0 {
		return 0, 0
	}
	if off > len(q) {
		off = len(q)
	}
	before := q[:off]
	line = strings.Count(before, "\n") + 1
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCountInString(before[lineStart:]) + 1
}

// lineRe finds the context DuckDB appends to an error: "LINE n: <text>" and,
// on the next line, a caret under the error's position.
var lineRe = regexp.MustCompile(`(?m)^LINE (\d+): (.*)\n( *)\^`)

// positioned turns a DuckDB error message about q into a message and a
// position: DuckDB's "LINE n:" context is replaced by line and column.
func positioned(q, msg string) (text string, line, col int) {
	m := lineRe.FindStringSubmatchIndex(msg)
	if m == nil {
		return strings.TrimSpace(msg), 0, 0
	}
	line, _ = strconv.Atoi(msg[m[2]:m[3]])
	snippet := msg[m[4]:m[5]]
	prefix := len("LINE ") + (m[3] - m[2]) + len(": ")
	caret := (m[7] - m[6]) - prefix // characters into the snippet
	text = strings.TrimSpace(msg[:m[0]] + msg[m[1]:])
	lines := strings.Split(q, "\n")
	if line < 1 || line > len(lines) || caret < 0 {
		return text, 0, 0
	}
	src := lines[line-1]
	// A long line is shown as a window around the position, "..." on a cut
	// side: find the window in the line.
	start := 0
	if rest, ok := strings.CutPrefix(snippet, "..."); ok {
		caret -= 3
		rest = strings.TrimSuffix(rest, "...")
		if i := strings.Index(src, rest); i >= 0 {
			start = utf8.RuneCountInString(src[:i])
		}
	}
	return text, line, start + caret + 1
}
