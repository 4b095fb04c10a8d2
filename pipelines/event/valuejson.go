package event

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is how times are written in JSON: RFC 3339 in UTC with up to
// microseconds.
const TimeLayout = "2006-01-02T15:04:05.999999Z07:00"

// The times an answer can print. RFC 3339 has four-digit years, so a time
// outside them (the end of a window that holds an event of 9999-12-31, the
// first window start before an event of 0001-01-01) is written as the
// nearest bound: every time the API writes is valid RFC 3339.
const (
	MinPrintableTime int64 = -62167219200000000 // 0000-01-01T00:00:00Z
	MaxPrintableTime int64 = 253402300799999999 // 9999-12-31T23:59:59.999999Z
)

// ClampTime returns UTC microseconds us within the printable times.
func ClampTime(us int64) int64 { return min(max(us, MinPrintableTime), MaxPrintableTime) }

// Time returns UTC microseconds as a UTC time.Time, clamped to the
// printable times (encoding/json refuses to write a year past 9999).
func Time(us int64) time.Time { return time.UnixMicro(ClampTime(us)).UTC() }

// TimeLayoutMicros is RFC 3339 in UTC with all six digits of microseconds,
// so that a time written in it is exact and always as long: the exact JSON
// form and Elasticsearch documents write times this way.
const TimeLayoutMicros = "2006-01-02T15:04:05.000000Z07:00"

// FormatTime formats UTC microseconds with TimeLayout, clamped to the
// printable times.
func FormatTime(us int64) string {
	return Time(us).Format(TimeLayout)
}

// AppendValueJSON appends v, of type t, as JSON: times as RFC 3339 strings,
// bools as true/false, nulls and non-finite doubles as null.
func AppendValueJSON(buf []byte, t FieldType, v Value) []byte {
	if !v.Valid {
		return append(buf, "null"...)
	}
	switch t {
	case TypeString:
		return AppendJSONString(buf, v.S)
	case TypeLong, TypeInt:
		return strconv.AppendInt(buf, v.I, 10)
	case TypeDouble:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return append(buf, "null"...)
		}
		return strconv.AppendFloat(buf, v.F, 'g', -1, 64)
	case TypeBool:
		return strconv.AppendBool(buf, v.I != 0)
	case TypeTimestamp:
		buf = append(buf, '"')
		buf = Time(v.I).AppendFormat(buf, TimeLayout)
		return append(buf, '"')
	}
	return append(buf, "null"...)
}

// AppendEventJSON appends the fields of an event as a JSON object in schema
// order. Null optional fields are written as null.
func AppendEventJSON(buf []byte, schema Schema, values []Value) []byte {
	return appendObject(buf, schema, values, AppendValueJSON)
}

// appendObject appends values as a JSON object keyed by the names of
// schema, in schema order, each value written by value. A missing value is
// null.
func appendObject(buf []byte, schema Schema, values []Value, value func([]byte, FieldType, Value) []byte) []byte {
	buf = append(buf, '{')
	for i, f := range schema {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendJSONString(buf, f.Name)
		buf = append(buf, ':')
		var v Value
		if i < len(values) {
			v = values[i]
		}
		buf = value(buf, f.Type, v)
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string the way encoding/json does,
// without its reflection and allocations: invalid UTF-8 is replaced by
// U+FFFD so the output is always valid JSON, and U+2028 and U+2029 are
// escaped. '<', '>' and '&' are written as they are.
func AppendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers.
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
