package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// typesTopic has one field of every type, some optional, and a typed id.
func typesTopic() *pipelines.Topic {
	return &pipelines.Topic{
		Name:       "types",
		Partitions: 1,
		Time:       "ts",
		TimeUnit:   "ms",
		Schema: event.Schema{
			{Name: "ts", Type: event.TypeTimestamp, Required: false},
			{Name: "s", Type: event.TypeString, Required: true},
			{Name: "l", Type: event.TypeLong},
			{Name: "i", Type: event.TypeInt},
			{Name: "d", Type: event.TypeDouble},
			{Name: "b", Type: event.TypeBool},
		},
	}
}

// TestDecodeTimeUnits: numeric timestamps are read in the topic's declared
// unit; undeclared, they are milliseconds and never guessed: one that would
// fall before 1973 (as epoch seconds do) is refused.
func TestDecodeTimeUnits(t *testing.T) {
	const ingest = 1764950400000000 // 2025-12-05T16:00:00Z
	f := func(unit, ts string, want int64, wantErr string) {
		t.Helper()
		topic := typesTopic()
		topic.TimeUnit = unit
		got, err := newDecoder(topic, "test").decode(`{"s":"x","ts":`+ts+`}`, ingest, nil)
		switch {
		case wantErr != "":
			if err == nil || err.Error() != wantErr {
				t.Errorf("unit %q, ts %s: %v, want error %q", unit, ts, err, wantErr)
			}
		case err != nil:
			t.Errorf("unit %q, ts %s: %v", unit, ts, err)
		case got[0].Time != want || got[0].Values[0].I != want:
			t.Errorf("unit %q, ts %s: time %d, want %d", unit, ts, got[0].Time, want)
		}
	}
	f("", "1764950000000", 1764950000000000, "")
	f("", "1764950000000.5", 1764950000000500, "")
	f("", "100000000000", 100000000000000, "") // 1973-03-03T09:46:40Z, the earliest
	f("", "99999999999", 0, `line 1: record 0: field "ts": "99999999999" read as epoch milliseconds is 1973-03-03T09:46:39.999Z, before 1973-03-03: if it is in seconds, declare topics[].time_unit: s (or ms to accept times this early)`)
	f("", "1764950000", 0, `line 1: record 0: field "ts": "1764950000" read as epoch milliseconds is 1970-01-21T10:15:50Z, before 1973-03-03: if it is in seconds, declare topics[].time_unit: s (or ms to accept times this early)`)
	f("", "-1", 0, `line 1: record 0: field "ts": "-1" read as epoch milliseconds is 1969-12-31T23:59:59.999Z, before 1973-03-03: if it is in seconds, declare topics[].time_unit: s (or ms to accept times this early)`)
	f("", `"1970-01-01T00:00:00Z"`, 0, "") // RFC 3339 says what it means
	f("ms", "1764950000", 1764950000000, "")
	f("ms", "-1", -1000, "")
	f("s", "1764950000", 1764950000000000, "")
	f("s", "1764950000.123456", 1764950000123456, "")
	f("s", "1.5e9", 1500000000000000, "")
	f("s", "1764950000.1234567", 0, `line 1: record 0: field "ts": expected timestamp as epoch seconds with at most 6 decimals, got "1764950000.1234567"`)
	f("s", "253402300800", 0, `line 1: record 0: field "ts": timestamp "253402300800" out of range (years 0001 to 9999)`)
	f("us", "1764950000123456", 1764950000123456, "")
	f("us", "1.5", 0, `line 1: record 0: field "ts": expected timestamp as epoch microseconds without decimals, got "1.5"`)
	f("us", `"soon"`, 0, `line 1: record 0: field "ts": expected timestamp (RFC 3339 string or epoch microseconds), got string "soon"`)
}

// TestDecodeMaxFuture: an event time more than topics[].max_future ahead of
// the ingest time is refused, naming the field and the bound; other
// timestamp fields are not bounded.
func TestDecodeMaxFuture(t *testing.T) {
	const ingest = 1764950400000000 // 2025-12-05T16:00:00Z
	topic := typesTopic()
	topic.Schema = append(topic.Schema, event.Field{Name: "due", Type: event.TypeTimestamp})
	topic.MaxFuture = pipelines.Duration(time.Hour)
	d := newDecoder(topic, "test")
	for _, c := range []struct{ body, err string }{
		{`{"s":"x","ts":"2025-12-05T17:00:00Z"}`, ""},
		{`{"s":"x","ts":"2025-12-05T17:00:00.000001Z"}`, `line 1: record 0: field "ts": 2025-12-05T17:00:00.000001Z is more than 1h ahead of the ingest time (topics[].max_future of topic "types")`},
		{`{"s":"x"}` + "\n" + `{"s":"x","ts":"9999-12-31T23:59:59Z"}`, `line 2: record 1: field "ts": 9999-12-31T23:59:59Z is more than 1h ahead of the ingest time (topics[].max_future of topic "types")`},
		{`{"s":"x","ts":1764957600001}`, `line 1: record 0: field "ts": 2025-12-05T18:00:00.001Z is more than 1h ahead of the ingest time (topics[].max_future of topic "types")`},
		{`{"s":"x","ts":"2020-01-01T00:00:00Z","due":"9999-01-01T00:00:00Z"}`, ""},
	} {
		_, err := d.decode(c.body, ingest, nil)
		if (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("%s: %v, want %q", c.body, err, c.err)
		}
	}
}

func TestDecodeForms(t *testing.T) {
	d := newDecoder(metricsTopic(1), "test")
	const ingest = 1_700_000_000_000_000
	obj1 := `{"ts":"2024-05-01T10:00:00Z","host":"a","region":"eu","cpu":0.5,"bytes":10,"id":"e1"}`
	obj2 := `{"ts":1714557601000,"host":"b","region":"us","cpu":1,"bytes":-3}`
	want := []event.Event{
		{ID: "e1", Time: 1714557600000000, Ingest: ingest, Values: []event.Value{
			{I: 1714557600000000, Valid: true}, {S: "a", Valid: true}, {S: "eu", Valid: true}, {F: 0.5, Valid: true}, {I: 10, Valid: true}}},
		{ID: "", Time: 1714557601000000, Ingest: ingest, Values: []event.Value{
			{I: 1714557601000000, Valid: true}, {S: "b", Valid: true}, {S: "us", Valid: true}, {F: 1, Valid: true}, {I: -3, Valid: true}}},
	}
	for name, body := range map[string]string{
		"array":            "[" + obj1 + ",\n " + obj2 + "]",
		"ndjson":           obj1 + "\n" + obj2 + "\n",
		"ndjson-crlf":      obj1 + "\r\n" + obj2 + "\r\n",
		"ndjson-blank":     "\n\n" + obj1 + "\n\n\n" + obj2,
		"array-whitespace": " \t\n[ " + obj1 + " , " + obj2 + " ] \n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := d.decode(body, ingest, nil)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
	t.Run("object", func(t *testing.T) {
		got, err := d.decode("  "+obj1+"  ", ingest, nil)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, want[:1]) {
			t.Fatalf("got  %+v\nwant %+v", got, want[:1])
		}
	})
}

func TestDecodeValues(t *testing.T) {
	d := newDecoder(typesTopic(), "test")
	const ingest = 42
	type vals = []event.Value
	null := event.Value{}
	str := func(s string) event.Value { return event.Value{S: s, Valid: true} }
	num := func(i int64) event.Value { return event.Value{I: i, Valid: true} }
	dbl := func(f float64) event.Value { return event.Value{F: f, Valid: true} }
	f := func(body string, wantID string, wantTime int64, want vals) {
		t.Helper()
		got, err := d.decode(body, ingest, nil)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d events", body, len(got))
		}
		ev := got[0]
		if ev.ID != wantID || ev.Time != wantTime || ev.Ingest != ingest || !reflect.DeepEqual(ev.Values, want) {
			t.Fatalf("%s:\ngot  id %q time %d %+v\nwant id %q time %d %+v", body, ev.ID, ev.Time, ev.Values, wantID, wantTime, want)
		}
	}
	// Absent optional fields are null; event time falls back to ingest time.
	f(`{"s":"x"}`, "", ingest, vals{null, str("x"), null, null, null, null})
	f(`{"s":"x","ts":null,"l":null,"i":null,"d":null,"b":null}`, "", ingest, vals{null, str("x"), null, null, null, null})
	// Order does not matter.
	f(`{"b":true,"d":2.5,"i":-7,"l":9007199254740993,"s":"x","ts":"2024-01-02T03:04:05.123456+01:00"}`, "", 1704161045123456,
		vals{num(1704161045123456), str("x"), num(9007199254740993), num(-7), dbl(2.5), num(1)})
	f(`{"s":"","b":false}`, "", ingest, vals{null, str(""), null, null, null, num(0)})
	// Integral numbers in other notations, and the limits.
	f(`{"s":"x","l":1.0e3,"i":2147483647}`, "", ingest, vals{null, str("x"), num(1000), num(math.MaxInt32), null, null})
	f(`{"s":"x","l":-9223372036854775808,"i":-2147483648}`, "", ingest, vals{null, str("x"), num(math.MinInt64), num(math.MinInt32), null, null})
	f(`{"s":"x","l":9223372036854775807}`, "", ingest, vals{null, str("x"), num(math.MaxInt64), null, null, null})
	f(`{"s":"x","l":12300e-2}`, "", ingest, vals{null, str("x"), num(123), null, null, null})
	f(`{"s":"x","l":-0}`, "", ingest, vals{null, str("x"), num(0), null, null, null})
	// Doubles take any number.
	f(`{"s":"x","d":-1.5e-3}`, "", ingest, vals{null, str("x"), null, null, dbl(-1.5e-3), null})
	f(`{"s":"x","d":123456789012345678901234567890}`, "", ingest, vals{null, str("x"), null, null, dbl(1.2345678901234568e29), null})
	// Epoch milliseconds, with up to 3 decimals.
	f(`{"s":"x","ts":1714557600123.456}`, "", 1714557600123456, vals{num(1714557600123456), str("x"), null, null, null, null})
	f(`{"s":"x","ts":-1}`, "", -1000, vals{num(-1000), str("x"), null, null, null, null})
	// Escapes, including surrogate pairs; a lone surrogate becomes U+FFFD.
	f(`{"s":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00|\ud800|\udc00x"}`, "", ingest,
		vals{null, str("a\"b\\c/d\b\f\n\r\t\u00e9\u20ac\U0001F600|\uFFFD|\uFFFDx"), null, null, null, null})
	f(`{"s":"h\u00e9llo wörld ✓"}`, "", ingest, vals{null, str("héllo wörld ✓"), null, null, null, null})
	// Escaped keys are keys.
	f(`{"\u0073":"x"}`, "", ingest, vals{null, str("x"), null, null, null, null})
	// The reserved id key.
	f(`{"s":"x","id":"ev-1"}`, "ev-1", ingest, vals{null, str("x"), null, null, null, null})
	f(`{"s":"x","id":null}`, "", ingest, vals{null, str("x"), null, null, null, null})
}

func TestDecodeTypedID(t *testing.T) {
	topic := typesTopic()
	topic.Schema = append(topic.Schema, event.Field{Name: "id", Type: event.TypeLong})
	d := newDecoder(topic, "test")
	got, err := d.decode(`{"s":"x","id":12}`, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID != "12" || got[0].Values[6] != (event.Value{I: 12, Valid: true}) {
		t.Fatalf("got id %q value %+v", got[0].ID, got[0].Values[6])
	}
	_, err = d.decode(`{"s":"x","id":"12"}`, 1, nil)
	if err == nil || err.Error() != `line 1: record 0: field "id": expected long, got string` {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	d := newDecoder(typesTopic(), "test")
	f := func(body string, want decodeError) {
		t.Helper()
		_, err := d.decode(body, 1, nil)
		if err == nil {
			t.Fatalf("%s: accepted", body)
		}
		if *err != want {
			t.Fatalf("%s:\ngot  %#v\nwant %#v", body, *err, want)
		}
	}
	rec := func(record, line int, field, msg string) decodeError {
		return decodeError{Record: record, Line: line, Field: field, Msg: msg}
	}
	ok := `{"s":"x"}`

	f(``, decodeError{Record: -1, Msg: "empty body"})
	f(" \n\t ", decodeError{Record: -1, Msg: "empty body"})
	f(`[]`, decodeError{Record: -1, Msg: "empty array: no events"})
	f(`"x"`, decodeError{Record: -1, Msg: "expected a JSON object, an array of objects or NDJSON, got string"})
	f(`[1]`, rec(0, 0, "", "expected a JSON object, got number"))
	f(`[`+ok+`,`+ok+`,[]]`, rec(2, 0, "", "expected a JSON object, got array"))
	f(`[`+ok+` `+ok+`]`, rec(0, 0, "", "expected ',' or ']' after the object, got object"))
	f(`[`+ok, rec(0, 0, "", "unexpected end of body in the array"))
	f(`[`+ok+`] x`, rec(1, 0, "", `unexpected 'x' after the array`))

	// Type rules, each naming record and field; NDJSON adds the line.
	f(ok+"\n"+ok+"\n"+`{"s":"x","d":"1.5"}`, rec(2, 3, "d", "expected double, got string"))
	f(ok+"\n\n"+`{"s":1}`, rec(1, 3, "s", "expected string, got number"))
	f(`[`+ok+`,{"s":"x","l":1.5}]`, rec(1, 0, "l", `expected long, got non-integral number "1.5"`))
	f(`{"s":"x","l":9223372036854775808}`, rec(0, 1, "l", `number "9223372036854775808" out of range for long`))
	f(`{"s":"x","l":-9223372036854775809}`, rec(0, 1, "l", `number "-9223372036854775809" out of range for long`))
	f(`{"s":"x","l":1e19}`, rec(0, 1, "l", `expected long, got out-of-range number "1e19"`))
	f(`{"s":"x","i":2147483648}`, rec(0, 1, "i", `number "2147483648" out of range for int`))
	f(`{"s":"x","i":-2147483649}`, rec(0, 1, "i", `number "-2147483649" out of range for int`))
	f(`{"s":"x","i":true}`, rec(0, 1, "i", "expected int, got boolean"))
	f(`{"s":"x","b":1}`, rec(0, 1, "b", "expected bool, got number"))
	f(`{"s":"x","b":"true"}`, rec(0, 1, "b", "expected bool, got string"))
	f(`{"s":"x","d":1e999}`, rec(0, 1, "d", `number "1e999" out of range for double`))
	f(`{"s":"x","ts":"yesterday"}`, rec(0, 1, "ts", `expected timestamp (RFC 3339 string or epoch milliseconds), got string "yesterday"`))
	f(`{"s":"x","ts":1.0001}`, rec(0, 1, "ts", `expected timestamp as epoch milliseconds with at most 3 decimals, got "1.0001"`))
	f(`{"s":"x","ts":true}`, rec(0, 1, "ts", "expected timestamp, got boolean"))
	f(`{"s":"x","ts":253402300800000}`, rec(0, 1, "ts", `timestamp "253402300800000" out of range (years 0001 to 9999)`))
	f(`{"s":"x","ts":1e30}`, rec(0, 1, "ts", `timestamp "1e30" out of range (years 0001 to 9999)`))
	f(`{"s":"x","ts":"0000-01-01T00:00:00Z"}`, rec(0, 1, "ts", `timestamp "0000-01-01T00:00:00Z" out of range (years 0001 to 9999)`))
	f(`{"s":null}`, rec(0, 1, "s", "null for a required field"))
	f(`{"l":1}`, rec(0, 1, "s", "missing required field"))
	f(`{}`, rec(0, 1, "s", "missing required field"))
	f(`{"s":"x","cpu":1}`, rec(0, 1, "cpu", `unknown field (not in the schema of topic "types")`))
	f(`{"s":"x","l":{"a":1}}`, rec(0, 1, "l", "nested objects and arrays are not supported (events are flat)"))
	f(`{"s":"x","tags":["a"]}`, rec(0, 1, "tags", `unknown field (not in the schema of topic "types")`))
	f(`{"s":["a"]}`, rec(0, 1, "s", "nested objects and arrays are not supported (events are flat)"))
	f(`{"s":"x","s":"y"}`, rec(0, 1, "s", "duplicate key"))
	f(`{"s":"x","id":"a","id":"b"}`, rec(0, 1, "id", "duplicate key"))
	f(`{"s":"x","id":""}`, rec(0, 1, "id", "event id must not be empty"))
	f(`{"s":"x","id":7}`, rec(0, 1, "id", "expected string, got number"))

	// Syntax.
	f(`{"s":"x"`, rec(0, 1, "", "unexpected end of body in the object"))
	f(`{"s":"x",}`, rec(0, 1, "", "expected a string key, got '}'"))
	f(`{"s" "x"}`, rec(0, 1, "s", "expected ':' after the key, got string"))
	f(`{"s":"x" "l":1}`, rec(0, 1, "", `expected ',' or '}' after field "s", got string`))
	f(`{s:"x"}`, rec(0, 1, "", "expected a string key, got 's'"))
	f(`{"s":"x`, rec(0, 1, "s", "unterminated string"))
	f(`{"s":"x`+"\x01"+`"}`, rec(0, 1, "s", "control character in string"))
	f(`{"s":"x`+"\xff"+`"}`, rec(0, 1, "s", "invalid UTF-8 in string"))
	f(`{"s":"\x"}`, rec(0, 1, "s", `invalid escape \x`))
	f(`{"s":"\u12"}`, rec(0, 1, "s", `invalid \u escape`))
	f(`{"s":"x","l":01}`, rec(0, 1, "", `expected ',' or '}' after field "l", got number`))
	f(`{"s":"x","l":-}`, rec(0, 1, "l", `invalid JSON number "-}"`))
	f(`{"s":"x","l":1.}`, rec(0, 1, "l", `invalid JSON number "1.}"`))
	f(`{"s":"x","l":1e}`, rec(0, 1, "l", `invalid JSON number "1e}"`))
	f(`{"s":"x","l":+1}`, rec(0, 1, "l", `invalid JSON value '+'`))
	f(`{"s":"x","b":tru}`, rec(0, 1, "b", `invalid JSON literal boolean`))
	f(`{"s":"x","b":nul}`, rec(0, 1, "b", `invalid JSON literal null`))
	f(ok+` x`, rec(1, 1, "", `expected a JSON object, got 'x'`))
}

func TestDecodeErrorJSONMessage(t *testing.T) {
	// The example of the contract.
	e := decodeError{Record: 3, Field: "cpu", Msg: "expected double, got string"}
	if got := e.Error(); got != `record 3: field "cpu": expected double, got string` {
		t.Fatalf("got %q", got)
	}
	e.Line = 4
	if got := e.Error(); got != `line 4: record 3: field "cpu": expected double, got string` {
		t.Fatalf("got %q", got)
	}
}

// encodeEvent writes an event back as JSON, for round trips.
func encodeEvent(schema event.Schema, ev event.Event) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if ev.ID != "" && schema.Index(idKey) < 0 {
		b.WriteString(`"id":`)
		j, _ := json.Marshal(ev.ID)
		b.Write(j)
		b.WriteByte(',')
	}
	for i, f := range schema {
		j, _ := json.Marshal(f.Name)
		b.Write(j)
		b.WriteByte(':')
		v := ev.Values[i]
		if !v.Valid {
			b.WriteString("null")
		} else {
			switch f.Type {
			case event.TypeString:
				j, _ := json.Marshal(v.S)
				b.Write(j)
			case event.TypeDouble:
				b.WriteString(strconv.FormatFloat(v.F, 'g', -1, 64))
			case event.TypeBool:
				b.WriteString(strconv.FormatBool(v.I != 0))
			case event.TypeTimestamp:
				b.WriteString(`"` + time.UnixMicro(v.I).UTC().Format(time.RFC3339Nano) + `"`)
			default:
				b.WriteString(strconv.FormatInt(v.I, 10))
			}
		}
		b.WriteByte(',')
	}
	out := b.Bytes()
	out[len(out)-1] = '}'
	return out
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"s":"x"}`,
		`[{"s":"x","l":1,"i":2,"d":3.5,"b":true,"ts":"2024-01-02T03:04:05Z"}]`,
		"{\"s\":\"a\\u00e9\\ud83d\\ude00\"}\n{\"s\":\"b\",\"id\":\"k\"}\n",
		`{"s":"x","l":1e3,"ts":1714557600123.456}`,
		`{"s":"x","d":-0.0,"b":false,"i":null}`,
		`[{"s":"x"},{"s":"y","l":-9223372036854775808}]`,
		`{"s":"x","tags":[1]}`,
		`{"s":"\ud800"}`,
	} {
		f.Add(s)
	}
	topic := typesTopic()
	d := newDecoder(topic, "test")
	shared := new(requestBufs) // reused across inputs, as the handler does
	f.Fuzz(func(t *testing.T, body string) {
		events, derr := d.decode(body, 7, nil)
		pooled, perr := d.decode(body, 7, shared)
		if !reflect.DeepEqual(events, pooled) || !reflect.DeepEqual(derr, perr) {
			t.Fatalf("with reused buffers %q decodes as %+v %v, not %+v %v", body, pooled, perr, events, derr)
		}
		shared.reset(pooled)
		if derr != nil {
			if derr.Msg == "" || derr.Error() == "" {
				t.Fatalf("empty error for %q", body)
			}
			return
		}
		if len(events) == 0 {
			t.Fatalf("accepted %q without events", body)
		}
		// What we accept is valid JSON to encoding/json, which agrees on
		// every string (including escapes and replacement of surrogates).
		dec := json.NewDecoder(strings.NewReader(body))
		var generic []map[string]any
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				break
			}
			switch v := v.(type) {
			case []any:
				for _, o := range v {
					generic = append(generic, o.(map[string]any))
				}
			case map[string]any:
				generic = append(generic, v)
			default:
				t.Fatalf("accepted %q, encoding/json sees %T", body, v)
			}
		}
		if len(generic) != len(events) {
			t.Fatalf("accepted %q as %d events, encoding/json sees %d", body, len(events), len(generic))
		}
		for k, ev := range events {
			if len(ev.Values) != len(topic.Schema) {
				t.Fatalf("event %d has %d values", k, len(ev.Values))
			}
			for i, fld := range topic.Schema {
				v := ev.Values[i]
				if fld.Required && !v.Valid {
					t.Fatalf("required %s null in %q", fld.Name, body)
				}
				g, present := generic[k][fld.Name]
				if !v.Valid {
					if present && g != nil {
						t.Fatalf("%s null but encoding/json has %v in %q", fld.Name, g, body)
					}
					continue
				}
				switch fld.Type {
				case event.TypeString:
					if g != v.S {
						t.Fatalf("%s: %q, encoding/json %q", fld.Name, v.S, g)
					}
				case event.TypeInt:
					if v.I < math.MinInt32 || v.I > math.MaxInt32 {
						t.Fatalf("int out of range: %d", v.I)
					}
				case event.TypeBool:
					if g != (v.I == 1) || (v.I != 0 && v.I != 1) {
						t.Fatalf("bool %d, encoding/json %v", v.I, g)
					}
				case event.TypeDouble:
					if gf, ok := g.(float64); !ok || gf != v.F {
						t.Fatalf("double %v, encoding/json %v", v.F, g)
					}
				}
				if fld.Type == event.TypeLong || fld.Type == event.TypeInt {
					// Both are correctly rounded conversions of one exact value.
					if gf, ok := g.(float64); !ok || gf != float64(v.I) {
						t.Fatalf("%s: %d, encoding/json %v", fld.Name, v.I, g)
					}
				}
			}
			if id, ok := generic[k][idKey]; ok && id != nil && id != ev.ID {
				t.Fatalf("id %q, encoding/json %v", ev.ID, id)
			}
			// Round trip: encoding the event and decoding it again gives it back.
			again, derr := d.decode(string(encodeEvent(topic.Schema, ev)), 7, nil)
			if derr != nil {
				t.Fatalf("re-decoding %s: %v", encodeEvent(topic.Schema, ev), derr)
			}
			if !reflect.DeepEqual(again[0], ev) {
				t.Fatalf("round trip of %q:\ngot  %+v\nwant %+v", body, again[0], ev)
			}
		}
	})
}

func TestParseRFC3339(t *testing.T) {
	for _, s := range []string{
		"2024-05-01T10:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2024-02-29T12:00:00.5+05:30", "2023-02-29T12:00:00Z", "1969-12-31T23:59:59.000001Z", "2024-05-01T10:00:00.1234567-23:59",
		"2024-05-01T24:00:00Z", "2024-05-01T10:60:00Z", "2024-05-01T10:00:60Z", "2024-13-01T10:00:00Z", "2024-05-01t10:00:00Z",
		"2024-05-01T10:00:00", "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00+0100", "0000-03-01T00:00:00Z",
		"1600-02-29T00:00:00Z", "1700-02-29T00:00:00Z", "-001-01-01T00:00:00Z", "2024-05-01T10:00:00.000000001Z",
	} {
		checkRFC3339(t, s)
	}
	for _, s := range []string{"2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00+02:00"} {
		if _, ok := parseRFC3339(s); !ok {
			t.Errorf("%q: fast path refused the common form", s)
		}
	}
}

// checkRFC3339 requires parseRFC3339 to agree with time.Parse wherever it
// accepts.
func checkRFC3339(t *testing.T, s string) {
	t.Helper()
	us, ok := parseRFC3339(s)
	tm, err := time.Parse(time.RFC3339, s)
	if ok && (err != nil || tm.UnixMicro() != us) {
		t.Fatalf("%q: fast %d, time.Parse %v %v (%d)", s, us, tm, err, tm.UnixMicro())
	}
}

func FuzzRFC3339(f *testing.F) {
	f.Add("2024-05-01T10:00:00.123456Z")
	f.Add("2024-02-29T12:00:00.5+05:30")
	f.Fuzz(checkRFC3339)
}

// FuzzDecodeTimeUnits checks numeric event times against exact decimal
// arithmetic in every time_unit, the refusal of undeclared early numbers,
// and the max_future bound.
func FuzzDecodeTimeUnits(f *testing.F) {
	for _, s := range []string{"1764950000", "1764950000000", "1.5e9", "-1", "0", "99999999999", "1e15", "1764950000.1234567", "253402300799.999999"} {
		for unit := range uint8(4) {
			f.Add(unit, s)
		}
	}
	const ingest = 1764950400000000 // 2025-12-05T16:00:00Z
	const maxFuture = int64(time.Hour / time.Microsecond)
	decoders := make([]*decoder, 4)
	exps := []int{3, 6, 3, 0} // undeclared, s, ms, us
	for i, unit := range []string{"", "s", "ms", "us"} {
		topic := typesTopic()
		topic.TimeUnit = unit
		topic.MaxFuture = pipelines.Duration(time.Hour)
		decoders[i] = newDecoder(topic, "test")
	}
	f.Fuzz(func(t *testing.T, unit uint8, num string) {
		i := int(unit % 4)
		events, derr := decoders[i].decode(`{"s":"x","ts":`+num+`}`, ingest, nil)
		if derr != nil {
			if derr.Msg == "" {
				t.Fatalf("empty error for %q", num)
			}
			return
		}
		got := events[0].Time
		text := strings.Trim(num, " \t\r\n") // JSON white space
		want, ok := new(big.Rat).SetString(text)
		if !ok {
			// big.Rat gives up on an exponent past int32; the number is
			// still JSON, and acceptable only as a zero (0E100…0).
			mant, _, _ := strings.Cut(strings.ToLower(text), "e")
			if !json.Valid([]byte(text)) || strings.Trim(mant, "-0.") != "" {
				t.Fatalf("accepted %q, which is no number", num)
			}
			want = new(big.Rat)
		}
		want.Mul(want, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exps[i])), nil)))
		if !want.IsInt() || want.Num().Cmp(big.NewInt(got)) != 0 {
			t.Fatalf("unit %d: %q decoded as %d µs, want %s", i, num, got, want.RatString())
		}
		if got > ingest+maxFuture {
			t.Fatalf("unit %d: %q is %d µs, past max_future", i, num, got)
		}
		if i == 0 && got < undeclaredEarliest {
			t.Fatalf("undeclared unit: %q accepted as %d µs, before 1973", num, got)
		}
	})
}
