package event

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestExactJSONRoundTrip(t *testing.T) {
	f := func(typ FieldType, v Value, text string) {
		t.Helper()
		got := string(AppendExactJSON(nil, typ, v))
		if got != text {
			t.Errorf("%s %+v: %s, want %s", typ, v, got, text)
		}
		var raw any
		dec := json.NewDecoder(bytes.NewReader([]byte(got)))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("%s: invalid JSON: %v", got, err)
		}
		back, err := ExactJSONValue(typ, raw)
		same := back == v || (back.Valid && v.Valid && math.IsNaN(back.F) && math.IsNaN(v.F))
		if err != nil || !same {
			t.Errorf("%s reads back as %+v (%v), want %+v", got, back, err, v)
		}
	}
	f(TypeString, Value{S: "héllo \"q\" <&>", Valid: true}, `"héllo \"q\" <&>"`)
	f(TypeString, Value{S: "bad \xff", Valid: true}, `{"base64":"YmFkIP8="}`)
	f(TypeLong, Value{I: math.MinInt64, Valid: true}, `-9223372036854775808`)
	f(TypeInt, Value{I: 7, Valid: true}, `7`)
	f(TypeDouble, Value{F: 0.1, Valid: true}, `0.1`)
	f(TypeDouble, Value{F: 5e-324, Valid: true}, `5e-324`)
	f(TypeDouble, Value{F: math.NaN(), Valid: true}, `"NaN"`)
	f(TypeDouble, Value{F: math.Inf(1), Valid: true}, `"+Inf"`)
	f(TypeDouble, Value{F: math.Inf(-1), Valid: true}, `"-Inf"`)
	f(TypeBool, Value{I: 1, Valid: true}, `true`)
	f(TypeBool, Value{Valid: true}, `false`)
	f(TypeTimestamp, Value{I: 1500, Valid: true}, `"1970-01-01T00:00:00.001500Z"`)
	f(TypeTimestamp, Value{I: -62135596800000000, Valid: true}, `"0001-01-01T00:00:00.000000Z"`)
	f(TypeTimestamp, Value{}, `null`)

	// Timestamps as UTC µs are read too; other mismatches are errors.
	if v, err := ExactJSONValue(TypeTimestamp, json.Number("-7")); err != nil || v != (Value{I: -7, Valid: true}) {
		t.Errorf("timestamp as µs: %+v, %v", v, err)
	}
	for _, c := range []struct {
		typ FieldType
		raw any
	}{{TypeBool, json.Number("1")}, {TypeLong, "x"}, {TypeTimestamp, "yesterday"}, {TypeString, map[string]any{"base64": "!"}}, {TypeDouble, "Inf"}} {
		if _, err := ExactJSONValue(c.typ, c.raw); err == nil {
			t.Errorf("%s from %#v: no error", c.typ, c.raw)
		}
	}
}
