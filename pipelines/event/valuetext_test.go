package event

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestParseValue(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC).UnixMicro()
	ok := func(typ FieldType, s string, want Value) {
		t.Helper()
		got, err := ParseValue(typ, s)
		if err != nil {
			t.Errorf("ParseValue(%v, %q): %v", typ, s, err)
			return
		}
		if got != want {
			t.Errorf("ParseValue(%v, %q) = %+v, want %+v", typ, s, got, want)
		}
	}
	bad := func(typ FieldType, s, msg string) {
		t.Helper()
		if _, err := ParseValue(typ, s); err == nil || err.Error() != msg {
			t.Errorf("ParseValue(%v, %q) error %v, want %q", typ, s, err, msg)
		}
	}
	ok(TypeString, "", Value{Valid: true})
	ok(TypeString, "eu west", Value{S: "eu west", Valid: true})
	ok(TypeLong, "-9223372036854775808", Value{I: math.MinInt64, Valid: true})
	ok(TypeInt, "2147483647", Value{I: math.MaxInt32, Valid: true})
	ok(TypeDouble, "1e3", Value{F: 1000, Valid: true})
	ok(TypeDouble, "42", Value{F: 42, Valid: true})
	ok(TypeBool, "true", Value{I: 1, Valid: true})
	ok(TypeBool, "0", Value{Valid: true})
	ok(TypeTimestamp, "2026-01-02T03:04:05.678Z", Value{I: ts, Valid: true})
	ok(TypeTimestamp, "2026-01-02T05:04:05.678+02:00", Value{I: ts, Valid: true})
	ok(TypeTimestamp, "1767323045678", Value{I: ts, Valid: true})
	ok(TypeTimestamp, "-1", Value{I: -1000, Valid: true})

	bad(TypeLong, "lots", `"lots" is not an integer`)
	bad(TypeLong, "1.5", `"1.5" is not an integer`)
	bad(TypeInt, "2147483648", "2147483648 does not fit an int")
	bad(TypeDouble, "x", `"x" is not a number`)
	bad(TypeBool, "yes", `"yes" is not true or false`)
	bad(TypeTimestamp, "yesterday", `"yesterday" is not an RFC 3339 time or epoch milliseconds`)
	bad(TypeTimestamp, "9223372036854775807", `"9223372036854775807" is out of range as epoch milliseconds: the years 0000 to 9999 are, -62167219200000 to 253402300799999`)
	bad(FieldType(99), "x", "unsupported type unknown")
}

// FuzzParseValue reads text as every type, as a query filter or a test
// file does: no panic, an error that says something, and what is accepted
// is written back (canonical text, JSON) and read again as the same value.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"", "x", "42", "-9223372036854775808", "2147483648", "1.5e300", "NaN", "true", "2026-01-02T15:04:05.123456+01:00", "1764950000000", "0000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	types := []FieldType{TypeString, TypeLong, TypeInt, TypeDouble, TypeBool, TypeTimestamp}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range types {
			v, err := ParseValue(typ, s)
			if err != nil {
				if err.Error() == "" {
					t.Fatalf("%s %q: empty error", typ, s)
				}
				continue
			}
			if !v.Valid {
				t.Fatalf("%s %q: accepted as null", typ, s)
			}
			js := AppendValueJSON(nil, typ, v)
			if !json.Valid(js) {
				t.Fatalf("%s %q: invalid JSON %s", typ, s, js)
			}
			if typ == TypeDouble && (math.IsNaN(v.F) || math.IsInf(v.F, 0)) {
				continue // JSON has no NaN: written as null
			}
			text := string(AppendCanonical(nil, typ, v))
			if typ == TypeTimestamp {
				text = FormatTime(v.I) // canonical is microseconds; numbers read as milliseconds
			}
			back, err := ParseValue(typ, text)
			if err != nil || back != v {
				t.Fatalf("%s %q: canonical %q reads back as %+v %v, want %+v", typ, s, text, back, err, v)
			}
		}
	})
}

// TestParseTimeWithinPrintableYears: epoch milliseconds past the years RFC
// 3339 can write are refused (they could not be printed back), the last
// and first printable milliseconds are read.
func TestParseTimeWithinPrintableYears(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int64
		err  bool
	}{
		{"253402300799999", 253402300799999000, false}, // 9999-12-31T23:59:59.999Z
		{"-62167219200000", -62167219200000000, false}, // 0000-01-01T00:00:00Z
		{"253402300800000", 0, true},                   // 10000-01-01
		{"270000000000000", 0, true},                   // found by FuzzParseValue
		{"-62167219200001", 0, true},                   // before the year 0000
		{"9999-12-31T23:59:59.999999Z", MaxPrintableTime, false},
	} {
		got, err := ParseTime(c.s)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseTime(%q) = %d, %v; want %d, error %v", c.s, got, err, c.want, c.err)
		}
	}
}
