package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The exact JSON form of values is the one Lambdaflow stores and reads back
// (dead-letter records, the batch layer's view files): unlike
// AppendValueJSON, which writes what JSON readers expect, it loses nothing,
// so that reading it back gives the values that were written, bit for bit:
//
//	string      a JSON string, or {"base64": "…"} when it is not valid UTF-8
//	            (JSON text cannot carry those bytes)
//	long, int   a number
//	double      a number (shortest form that round-trips), or the strings
//	            "NaN", "+Inf", "-Inf"
//	bool        true or false
//	timestamp   an RFC 3339 UTC string with all six digits of microseconds
//	            (TimeLayoutMicros); a number of UTC µs is read too
//	null        null

// AppendExactJSON appends v, of type t, in the exact JSON form: the form of
// AppendValueJSON except where that one loses something (strings that are
// not valid UTF-8, non-finite doubles, timestamps' trailing zeros).
func AppendExactJSON(buf []byte, t FieldType, v Value) []byte {
	if v.Valid {
		switch {
		case t == TypeString && !utf8.ValidString(v.S):
			buf = append(buf, `{"base64":"`...)
			buf = base64.StdEncoding.AppendEncode(buf, []byte(v.S))
			return append(buf, `"}`...)
		case t == TypeDouble && math.IsNaN(v.F):
			return append(buf, `"NaN"`...)
		case t == TypeDouble && math.IsInf(v.F, 1):
			return append(buf, `"+Inf"`...)
		case t == TypeDouble && math.IsInf(v.F, -1):
			return append(buf, `"-Inf"`...)
		case t == TypeTimestamp:
			buf = append(buf, '"')
			buf = time.UnixMicro(v.I).UTC().AppendFormat(buf, TimeLayoutMicros)
			return append(buf, '"')
		}
	}
	return AppendValueJSON(buf, t, v)
}

// ExactJSONValue reads a value of type t in the exact JSON form, as
// encoding/json decoded it into raw with UseNumber (nil for null).
func ExactJSONValue(t FieldType, raw any) (Value, error) {
	if raw == nil {
		return Value{}, nil
	}
	switch t {
	case TypeString:
		switch x := raw.(type) {
		case string:
			return Value{S: x, Valid: true}, nil
		case map[string]any:
			if s, ok := x["base64"].(string); ok && len(x) == 1 {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return Value{}, err
				}
				return Value{S: string(b), Valid: true}, nil
			}
		}
	case TypeLong, TypeInt:
		if n, ok := raw.(json.Number); ok {
			i, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return Value{}, err
			}
			return Value{I: i, Valid: true}, nil
		}
	case TypeDouble:
		switch x := raw.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return Value{}, err
			}
			return Value{F: f, Valid: true}, nil
		case string:
			switch x {
			case "NaN":
				return Value{F: math.NaN(), Valid: true}, nil
			case "+Inf":
				return Value{F: math.Inf(1), Valid: true}, nil
			case "-Inf":
				return Value{F: math.Inf(-1), Valid: true}, nil
			}
		}
	case TypeBool:
		if x, ok := raw.(bool); ok {
			var i int64
			if x {
				i = 1
			}
			return Value{I: i, Valid: true}, nil
		}
	case TypeTimestamp:
		switch x := raw.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return Value{}, err
			}
			return Value{I: ts.UnixMicro(), Valid: true}, nil
		case json.Number:
			i, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return Value{}, err
			}
			return Value{I: i, Valid: true}, nil
		}
	}
	return Value{}, fmt.Errorf("%v is not a %s", raw, t)
}

// AppendExactRecordJSON appends values as a JSON object keyed by the names
// of schema, in schema order, each value in the exact JSON form. A missing
// value is null.
func AppendExactRecordJSON(buf []byte, schema Schema, values []Value) []byte {
	return appendObject(buf, schema, values, AppendExactJSON)
}

// ErrNullRecord is returned by ParseExactRecordJSON for the record null.
var ErrNullRecord = errors.New("record is null")

// ParseExactRecordJSON reads a record written by AppendExactRecordJSON back
// into values in schema order. Fields the record lacks (added to the schema
// since) are null; keys the schema lacks (dropped since) are ignored.
func ParseExactRecordJSON(schema Schema, rec []byte) ([]Value, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("record is not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, ErrNullRecord
	}
	vals := make([]Value, len(schema))
	for i, f := range schema {
		v, err := ExactJSONValue(f.Type, obj[f.Name])
		if err != nil {
			return nil, fmt.Errorf("record field %q: %w", f.Name, err)
		}
		vals[i] = v
	}
	return vals, nil
}
