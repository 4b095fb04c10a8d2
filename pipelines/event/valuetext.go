package event

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// ParseValue reads s, a value of type t written as plain text (a query
// parameter, a scalar of a test file): a string is itself; long and int
// are decimal integers, an int within 32 bits; double is any number
// strconv.ParseFloat reads; bool is true or false (strconv.ParseBool); a
// timestamp is RFC 3339 or epoch milliseconds (ParseTime). The error says
// what s is not, quoting it.
func ParseValue(t FieldType, s string) (Value, error) {
	switch t {
	case TypeString:
		return Value{S: s, Valid: true}, nil
	case TypeLong, TypeInt:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an integer", s)
		}
		if t == TypeInt && (i < math.MinInt32 || i > math.MaxInt32) {
			return Value{}, fmt.Errorf("%d does not fit an int", i)
		}
		return Value{I: i, Valid: true}, nil
	case TypeDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a number", s)
		}
		return Value{F: f, Valid: true}, nil
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not true or false", s)
		}
		v := Value{Valid: true}
		if b {
			v.I = 1
		}
		return v, nil
	case TypeTimestamp:
		us, err := ParseTime(s)
		if err != nil {
			return Value{}, err
		}
		return Value{I: us, Valid: true}, nil
	}
	return Value{}, fmt.Errorf("unsupported type %s", t)
}

// ParseTime reads an RFC 3339 time or epoch milliseconds, the two ways an
// event time is written, as UTC microseconds. Epoch milliseconds outside
// the years RFC 3339 can write (0000 to 9999) are refused: such a time
// could not be printed back.
func ParseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > MaxPrintableTime/1000 || ms < MinPrintableTime/1000 {
			return 0, fmt.Errorf("%q is out of range as epoch milliseconds: the years 0000 to 9999 are, %d to %d", s, MinPrintableTime/1000, MaxPrintableTime/1000)
		}
		return ms * 1000, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time or epoch milliseconds", s)
	}
	return t.UnixMicro(), nil
}
