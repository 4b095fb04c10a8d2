package sqlquery

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Span bounds the event times a query reads of a lake table: files whose
// period lies wholly outside [From, To) hold no row the query keeps. A
// zero bound is open.
type Span struct {
	From, To time.Time
}

// spanMargin widens every bound a query gives. A literal without a time
// zone is read by DuckDB in the session's zone, and a comparison between a
// timestamp column and a string may cast either way: a day covers every
// zone's offset, so a file is never left out for a reading of the literal
// other than the one made here.
const spanMargin = 24 * time.Hour

// bounds are the limits a query's WHERE clauses put on the columns of one
// table reference, by lower-cased column name, in UTC µs: [lo, hi], open
// ends at math.MinInt64 and math.MaxInt64.
type bounds map[string][2]int64

func (b bounds) narrow(col string, lo, hi int64) {
	cur, ok := b[col]
	if !ok {
		cur = [2]int64{math.MinInt64, math.MaxInt64}
	}
	b[col] = [2]int64{max(cur[0], lo), min(cur[1], hi)}
}

// span is what b says of the columns cols (any of which equals the event
// time wherever it is not null), widened by spanMargin.
func (b bounds) span(cols ...string) Span {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	for _, c := range cols {
		if r, ok := b[strings.ToLower(c)]; ok && c != "" {
			lo, hi = max(lo, r[0]), min(hi, r[1])
		}
	}
	var s Span
	margin := spanMargin.Microseconds()
	if lo != math.MinInt64 {
		s.From = time.UnixMicro(lo - margin).UTC()
	}
	if hi != math.MaxInt64 {
		s.To = time.UnixMicro(hi + margin).UTC()
	}
	return s
}

// tableBounds finds, for each table reference of a parsed query (by its
// query_location), the bounds its SELECT's WHERE puts on its columns. Only
// what cannot change the answer when rows outside the bounds are never
// read counts: conjuncts at the top of the WHERE of the SELECT whose FROM
// names the table directly, each comparing a column of that table with a
// constant time; not past a sample (taken before WHERE), an ASOF or
// positional join (their matches depend on every row of the table), nor
// columns renamed in the FROM. Rows that fail such a conjunct are dropped
// by the WHERE before anything else sees them, whatever joins the FROM
// holds: a row missing from one side of an outer join leaves nulls there,
// which the conjunct drops too.
//
// A constant time is a string, a string cast to a timestamp or a date, or
// now() (or get_current_timestamp(), transaction_timestamp()) plus or
// minus a constant interval of fixed length, now being the time the query
// is read (its run starts a moment later; the margin covers it).
func tableBounds(tree any, now time.Time) map[int]bounds {
	out := map[int]bounds{}
	walk(tree, func(m map[string]any) {
		if m["type"] != "SELECT_NODE" || m["sample"] != nil {
			return
		}
		var tables []map[string]any
		if !directTables(m["from_table"], &tables) || len(tables) == 0 {
			return
		}
		conj := conjuncts(m["where_clause"], nil)
		for _, t := range tables {
			at, ok := t["query_location"].(float64)
			if !ok || at < 0 {
				continue
			}
			b := bounds{}
			for _, c := range conj {
				col, lo, hi, ok := timeBound(c, t, len(tables) == 1, now)
				if ok {
					b.narrow(col, lo, hi)
				}
			}
			if len(b) > 0 {
				out[int(at)] = b
			}
		}
	})
	return out
}

// directTables collects the base tables a FROM names outside subqueries;
// false for a FROM whose rows depend on all of a table's (a sample, an
// ASOF or positional join) or that renames a table's columns.
func directTables(from any, out *[]map[string]any) bool {
	m, ok := from.(map[string]any)
	if !ok {
		return true
	}
	switch m["type"] {
	case "BASE_TABLE":
		if aliases, _ := m["column_name_alias"].([]any); m["sample"] != nil || len(aliases) > 0 {
			// Renamed columns may give another column the event time's name.
			return false
		}
		*out = append(*out, m)
	case "JOIN":
		switch m["ref_type"] {
		case "REGULAR", "NATURAL", "CROSS", nil:
		default:
			return false
		}
		return directTables(m["left"], out) && directTables(m["right"], out)
	}
	return true
}

// conjuncts flattens the ANDs at the top of an expression.
func conjuncts(e any, out []map[string]any) []map[string]any {
	m, ok := e.(map[string]any)
	if !ok {
		return out
	}
	if m["type"] == "CONJUNCTION_AND" {
		if cs, ok := m["children"].([]any); ok {
			for _, c := range cs {
				out = conjuncts(c, out)
			}
		}
		return out
	}
	return append(out, m)
}

// timeBound reads a conjunct that compares a column of table t with a
// constant time: the column (lower-cased) and the bounds it puts on it.
// An unqualified column counts only when t is the FROM's only table.
func timeBound(c, t map[string]any, only bool, now time.Time) (col string, lo, hi int64, ok bool) {
	lo, hi = math.MinInt64, math.MaxInt64
	if c["type"] == "COMPARE_BETWEEN" {
		col, ok = columnOf(c["input"], t, only)
		l, lok := constTime(c["lower"], now)
		h, hok := constTime(c["upper"], now)
		if !ok || !lok && !hok {
			return "", 0, 0, false
		}
		if lok {
			lo = l
		}
		if hok {
			hi = h
		}
		return col, lo, hi, true
	}
	op, _ := c["type"].(string)
	left, right := c["left"], c["right"]
	col, ok = columnOf(left, t, only)
	v, vok := constTime(right, now)
	if !ok {
		// The constant first: flip the comparison.
		col, ok = columnOf(right, t, only)
		v, vok = constTime(left, now)
		op = map[string]string{"COMPARE_LESSTHAN": "COMPARE_GREATERTHAN", "COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
			"COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO", "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
			"COMPARE_EQUAL": "COMPARE_EQUAL"}[op]
	}
	if !ok || !vok {
		return "", 0, 0, false
	}
	switch op {
	case "COMPARE_EQUAL":
		return col, v, v, true
	case "COMPARE_GREATERTHAN", "COMPARE_GREATERTHANOREQUALTO":
		return col, v, hi, true
	case "COMPARE_LESSTHAN", "COMPARE_LESSTHANOREQUALTO":
		return col, lo, v, true
	}
	return "", 0, 0, false
}

// columnOf reads a reference to a column of table t: qualified by t's
// alias (or its name when it has none), or unqualified when only.
func columnOf(e any, t map[string]any, only bool) (string, bool) {
	m, ok := e.(map[string]any)
	if !ok || m["type"] != "COLUMN_REF" {
		return "", false
	}
	names, _ := m["column_names"].([]any)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		s, ok := n.(string)
		if !ok {
			return "", false
		}
		parts = append(parts, strings.ToLower(s))
	}
	switch len(parts) {
	case 1:
		return parts[0], only
	case 2:
		name, _ := t["alias"].(string)
		if name == "" {
			name, _ = t["table_name"].(string)
		}
		return parts[1], parts[0] == strings.ToLower(name)
	}
	return "", false
}

// timeLayouts are the forms of a time literal read here; anything else
// bounds nothing.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// constTime reads a constant time (see tableBounds) in UTC µs.
func constTime(e any, now time.Time) (int64, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return 0, false
	}
	switch m["type"] {
	case "OPERATOR_CAST":
		switch castType(m) {
		case "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE":
		default:
			return 0, false
		}
		return constTime(m["child"], now)
	case "VALUE_CONSTANT":
		s, ok := constString(m)
		if !ok {
			return 0, false
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UnixMicro(), true
			}
		}
	case "FUNCTION":
		args, _ := m["children"].([]any)
		switch name, _ := m["function_name"].(string); strings.ToLower(name) {
		case "now", "get_current_timestamp", "transaction_timestamp":
			return now.UnixMicro(), len(args) == 0
		case "+", "-":
			if len(args) != 2 {
				return 0, false
			}
			t, tok := constTime(args[0], now)
			d, dok := constInterval(args[1])
			if name == "+" && (!tok || !dok) {
				// interval + time
				t, tok = constTime(args[1], now)
				d, dok = constInterval(args[0])
			}
			if !tok || !dok {
				return 0, false
			}
			if name == "-" {
				d = -d
			}
			return t + d.Microseconds(), true
		}
	}
	return 0, false
}

// castType is the type a cast expression casts to.
func castType(m map[string]any) string {
	ct, _ := m["cast_type"].(map[string]any)
	id, _ := ct["id"].(string)
	return id
}

// constString reads a string constant.
func constString(m map[string]any) (string, bool) {
	v, _ := m["value"].(map[string]any)
	s, ok := v["value"].(string)
	return strings.TrimSpace(s), ok && v["is_null"] != true
}

// intervalUnits are the units of an interval of fixed length (a month or
// a year is not one).
var intervalUnits = map[string]time.Duration{
	"microsecond": time.Microsecond, "millisecond": time.Millisecond, "second": time.Second,
	"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour,
}

// constInterval reads a constant interval of fixed length: a string cast
// to an interval ('2 hours', '1 day 6 hours'), or INTERVAL n UNIT, which
// DuckDB parses into to_<units>(n).
func constInterval(e any) (time.Duration, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return 0, false
	}
	switch m["type"] {
	case "OPERATOR_CAST":
		child, _ := m["child"].(map[string]any)
		if castType(m) != "INTERVAL" || child["type"] != "VALUE_CONSTANT" {
			return 0, false
		}
		s, ok := constString(child)
		if !ok {
			return 0, false
		}
		f := strings.Fields(strings.ToLower(s))
		if len(f) == 0 || len(f)%2 != 0 {
			return 0, false
		}
		var d time.Duration
		for i := 0; i < len(f); i += 2 {
			n, err := strconv.ParseInt(f[i], 10, 32)
			unit, ok := intervalUnits[strings.TrimSuffix(f[i+1], "s")]
			if err != nil || !ok || !within(float64(n), unit) {
				return 0, false
			}
			d += time.Duration(n) * unit
		}
		return d, within(float64(d), 1)
	case "FUNCTION":
		name, _ := m["function_name"].(string)
		unit, ok := intervalUnits[strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(name), "to_"), "s")]
		args, _ := m["children"].([]any)
		if !ok || !strings.HasPrefix(name, "to_") || len(args) != 1 {
			return 0, false
		}
		n, ok := constNumber(args[0])
		if !ok || n != math.Trunc(n) || !within(n, unit) {
			return 0, false
		}
		return time.Duration(n) * unit, true
	}
	return 0, false
}

// longestInterval bounds the intervals read: longer ones (and the
// overflow they could cause) bound nothing.
const longestInterval = 100 * 366 * 24 * time.Hour

// within tells whether n units are no longer than longestInterval.
func within(n float64, unit time.Duration) bool {
	return math.Abs(n) <= float64(longestInterval/unit)
}

// constNumber reads an integer constant through the casts and trunc
// DuckDB wraps around INTERVAL n UNIT's n.
func constNumber(e any) (float64, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return 0, false
	}
	switch m["type"] {
	case "VALUE_CONSTANT":
		v, _ := m["value"].(map[string]any)
		n, ok := v["value"].(float64)
		return n, ok && v["is_null"] != true
	case "OPERATOR_CAST":
		return constNumber(m["child"])
	case "FUNCTION":
		args, _ := m["children"].([]any)
		if name, _ := m["function_name"].(string); name == "trunc" && len(args) == 1 {
			return constNumber(args[0])
		}
	}
	return 0, false
}
