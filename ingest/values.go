package ingest

import (
	"math"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// number scans a JSON number and types it as t.
func (st *decodeState) number(t event.FieldType, dst *event.Value) string {
	s := st.s
	start := st.pos
	i := start
	neg := false
	if s[i] == '-' {
		neg = true
		i++
	}
	// Integer part: 0 or [1-9][0-9]*, accumulated while it fits.
	intStart := i
	var mant uint64
	overflow := false
	if i < len(s) && s[i] == '0' {
		i++
	} else if i < len(s) && s[i] >= '1' && s[i] <= '9' {
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if mant > (math.MaxUint64-9)/10 {
				overflow = true
			}
			mant = mant*10 + uint64(s[i]-'0')
		}
	} else {
		st.pos = i
		return "invalid JSON number " + quoteShort(s[start:min(i+1, len(s))])
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		fracEnd = i
		if fracEnd == fracStart {
			st.pos = i
			return "invalid JSON number " + quoteShort(s[start:min(i+1, len(s))])
		}
	}
	hasExp := false
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		hasExp = true
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if exp < 100000 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if i == es {
			st.pos = i
			return "invalid JSON number " + quoteShort(s[start:min(i+1, len(s))])
		}
		if eneg {
			exp = -exp
		}
	}
	st.pos = i
	text := s[start:i]
	plain := fracEnd == fracStart && !hasExp && !overflow

	switch t {
	case event.TypeDouble:
		if plain && mant <= 1<<53 {
			f := float64(mant)
			if neg {
				f = -f
			}
			dst.F, dst.Valid = f, true
			return ""
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return "number " + quoteShort(text) + " out of range for double"
		}
		dst.F, dst.Valid = f, true
		return ""
	case event.TypeLong, event.TypeInt:
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if t == event.TypeInt {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		var v int64
		if plain {
			var ok bool
			v, ok = signed(mant, neg)
			if !ok {
				return "number " + quoteShort(text) + " out of range for " + t.String()
			}
		} else {
			var msg string
			v, msg = integral(s[intStart:intEnd], s[fracStart:fracEnd], exp, neg)
			if msg != "" {
				return "expected " + t.String() + ", got " + msg + " " + quoteShort(text)
			}
		}
		if v < lo || v > hi {
			return "number " + quoteShort(text) + " out of range for " + t.String()
		}
		dst.I, dst.Valid = v, true
		return ""
	case event.TypeTimestamp:
		// An epoch number in the topic's unit; decimals down to
		// microseconds.
		d := st.d
		var us int64
		if plain {
			n, ok := signed(mant, neg)
			f := pow10[d.unitExp]
			if !ok || n > maxMicros/f || n < minMicros/f {
				return timestamp(dst, minMicros-1, text)
			}
			us = n * f
		} else {
			var msg string
			us, msg = integral(s[intStart:intEnd], s[fracStart:fracEnd], exp+d.unitExp, neg)
			switch msg {
			case "":
			case "out-of-range number":
				return timestamp(dst, minMicros-1, text)
			default:
				decimals := "without decimals"
				if d.unitExp > 0 {
					decimals = "with at most " + strconv.Itoa(d.unitExp) + " decimals"
				}
				return "expected timestamp as epoch " + d.unitName + " " + decimals + ", got " + quoteShort(text)
			}
		}
		if us < d.earliest {
			return quoteShort(text) + " read as epoch milliseconds is " + event.FormatTime(us) +
				", before 1973-03-03: if it is in seconds, declare topics[].time_unit: s (or ms to accept times this early)"
		}
		return timestamp(dst, us, text)
	}
	return "expected " + t.String() + ", got number"
}

// pow10[e] is 10^e, for the units of numeric timestamps.
var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000}

// Timestamps are limited to the years 0001 to 9999, which RFC 3339, Parquet
// readers and the sinks' databases all represent.
const (
	minMicros = -62135596800000000 // 0001-01-01T00:00:00Z
	maxMicros = 253402300799999999 // 9999-12-31T23:59:59.999999Z
)

func timestamp(dst *event.Value, us int64, text string) string {
	if us < minMicros || us > maxMicros {
		return "timestamp " + quoteShort(text) + " out of range (years 0001 to 9999)"
	}
	dst.I, dst.Valid = us, true
	return ""
}

// parseRFC3339 parses the strict RFC 3339 form that time.Parse's fast path
// accepts (2006-01-02T15:04:05[.fraction](Z|±07:00)) into UTC
// microseconds, with the same checks and the same result, without building
// a time.Time and its location. ok is false for anything else.
func parseRFC3339(s string) (us int64, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	ok = true
	num := func(s string, lo, hi int) int {
		x := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || x > hi {
			ok = false
		}
		return x
	}
	year := num(s[0:4], 0, 9999)
	month := num(s[5:7], 1, 12)
	if !ok {
		return 0, false
	}
	day := num(s[8:10], 1, daysIn(month, year))
	hour := num(s[11:13], 0, 23)
	minute := num(s[14:16], 0, 59)
	sec := num(s[17:19], 0, 59)
	if !ok {
		return 0, false
	}
	rest := s[19:]
	frac := 0
	if len(rest) >= 2 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' {
		n := 1
		for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
			if n <= 6 { // microseconds; later digits are truncated
				frac = frac*10 + int(rest[n]-'0')
			}
		}
		for k := n; k <= 6; k++ {
			frac *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	if len(rest) != 1 || rest[0] != 'Z' {
		if len(rest) != len("-07:00") || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
			return 0, false
		}
		offset = (num(rest[1:3], 0, 23)*60 + num(rest[4:6], 0, 59)) * 60
		if !ok {
			return 0, false
		}
		if rest[0] == '-' {
			offset = -offset
		}
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return secs*1_000_000 + int64(frac), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the given date
// of the proleptic Gregorian calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// signed applies the sign to a magnitude, reporting whether it fits int64.
func signed(mag uint64, neg bool) (int64, bool) {
	if neg {
		if mag > 1<<63 {
			return 0, false
		}
		return -int64(mag), true // -(1<<63) wraps to MinInt64, as wanted
	}
	if mag > math.MaxInt64 {
		return 0, false
	}
	return int64(mag), true
}

// integral evaluates intDigits.fracDigits × 10^exp exactly, and fails unless
// the result is an integer that fits int64. Exactness matters: a float
// detour would accept 9007199254740993.0 as ...992.
func integral(intDigits, fracDigits string, exp int, neg bool) (int64, string) {
	digits := strings.TrimLeft(intDigits+fracDigits, "0")
	scale := exp - len(fracDigits) // value = digits × 10^scale
	if digits == "" {
		return 0, ""
	}
	if scale < 0 {
		cut := len(digits) + scale
		if cut <= 0 || strings.TrimRight(digits[cut:], "0") != "" {
			return 0, "non-integral number"
		}
		digits = digits[:cut]
		scale = 0
	}
	if len(digits)+scale > 19 {
		return 0, "out-of-range number"
	}
	var mag uint64
	for i := 0; i < len(digits); i++ {
		mag = mag*10 + uint64(digits[i]-'0')
	}
	for ; scale > 0; scale-- {
		mag *= 10
	}
	v, ok := signed(mag, neg)
	if !ok {
		return 0, "out-of-range number"
	}
	return v, ""
}

// canonical is the text form of a value: the event id when the schema types
// the id field, and the bytes hashed for partitioning (see the package doc).
func canonical(t event.FieldType, v event.Value) string {
	if t == event.TypeString {
		return v.S
	}
	var buf [32]byte
	return string(event.AppendCanonical(buf[:0], t, v))
}
