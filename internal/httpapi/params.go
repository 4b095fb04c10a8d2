package httpapi

import (
	"fmt"
	"time"
)

// ParseTime parses a time parameter: RFC 3339, fractional seconds allowed.
// The error says what was wrong with the value; callers name the parameter.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t, nil
}

// Last returns the last value of parameter name in q, "" without one: a
// repeated parameter counts once, its last value winning, everywhere.
func Last(q map[string][]string, name string) string {
	if v := q[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}
