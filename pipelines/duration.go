package pipelines

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration as written in a pipeline file: Go's syntax
// ("90s", "1h30m", "500ms") plus a "d" unit of 24 hours ("7d", "1d12h"). A bare
// "0" is zero; any other number needs a unit.
func ParseDuration(s string) (Duration, error) {
	if s == "0" {
		return 0, nil
	}
	neg := false
	rest := s
	if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	if rest == "" {
		return 0, badDuration(s)
	}
	// Days come first when present: time.ParseDuration knows no "d", and a
	// day count is never fractional in practice, so "1d12h" is split there.
	var days int64
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || i == 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, badDuration(s)
		}
		days, rest = n, rest[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil || d < 0 || strings.HasPrefix(rest, "+") {
			return 0, badDuration(s)
		}
	}
	total := time.Duration(days) * 24 * time.Hour
	if total > math.MaxInt64-d {
		return 0, badDuration(s)
	}
	total += d
	if neg {
		total = -total
	}
	return Duration(total), nil
}

func badDuration(s string) error {
	return fmt.Errorf("invalid duration %q: want a number and a unit, e.g. 90s, 5m, 168h or 7d", s)
}

// String formats d the way a user would write it: "168h", "1m30s", "500ms";
// time.Duration's "168h0m0s" trailing zero units are left out.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes d as String does, so JSON and YAML output reads like
// the pipeline file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses d with ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// byteUnits are the accepted size suffixes: SI (powers of 1000) and IEC
// (powers of 1024). Lower-case "kb" and friends are accepted too, since nobody
// means millibits in a config file.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize parses a size as written in a pipeline file: a plain number
// of bytes ("1024") or a whole number with a unit ("64KiB", "10MB", "2GiB",
// "1 TiB"). Units are KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
// (powers of 1024), in any letter case.
func ParseByteSize(s string) (ByteSize, error) {
	num, mult := s, int64(1)
	for _, u := range byteUnits {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			num, mult = strings.TrimSuffix(s[:len(s)-len(u.suffix)], " "), u.mult
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, badSize(s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, badSize(s)
	}
	return ByteSize(n * mult), nil
}

func badSize(s string) error {
	return fmt.Errorf("invalid size %q: want a whole number of bytes, optionally with a unit, e.g. 1024, 64KiB, 10MB or 2GiB", s)
}
