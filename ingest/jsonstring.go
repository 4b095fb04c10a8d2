package ingest

import (
	"unicode/utf16"
	"unicode/utf8"
)

// strClass marks the bytes that end the fast path of string scanning: the
// quote, the backslash, control characters (invalid in JSON strings) and
// non-ASCII bytes (which must be valid UTF-8).
var strClass = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return t
}()

// str scans a JSON string at st.pos (on the opening quote). Strings without
// escapes are sliced out of the body; those with escapes are unescaped into
// a new string. A lone surrogate becomes U+FFFD, as in encoding/json; invalid
// UTF-8 is an error, since every store downstream requires valid UTF-8.
func (st *decodeState) str() (string, string) {
	s := st.s
	i := st.pos + 1
	start := i
	for {
		for i < len(s) && !strClass[s[i]] {
			i++
		}
		if i >= len(s) {
			return "", "unterminated string"
		}
		c := s[i]
		switch {
		case c == '"':
			st.pos = i + 1
			return s[start:i], ""
		case c == '\\':
			return st.strEscaped(start, i)
		case c < 0x20:
			return "", "control character in string"
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return "", "invalid UTF-8 in string"
			}
			i += size
		}
	}
}

// strEscaped continues str from the first backslash at i.
func (st *decodeState) strEscaped(start, i int) (string, string) {
	s := st.s
	b := append(st.scratch[:0], s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			st.pos = i + 1
			st.scratch = b
			return string(b), ""
		case c < 0x20:
			return "", "control character in string"
		case c == '\\':
			if i+1 >= len(s) {
				return "", "unterminated string"
			}
			i++
			switch s[i] {
			case '"', '\\', '/':
				b = append(b, s[i])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(s, i+1)
				if !ok {
					return "", "invalid \\u escape"
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A pair is two escapes; anything else leaves a lone half.
					if r2, ok := hex4(s, i+3); ok && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
							i += 6
						} else {
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", "invalid escape \\" + string(rune(s[i]))
			}
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return "", "invalid UTF-8 in string"
			}
			b = append(b, s[i:i+size]...)
			i += size
		}
	}
	return "", "unterminated string"
}

// hex4 parses 4 hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
