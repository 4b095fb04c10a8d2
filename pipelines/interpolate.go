package pipelines

import (
	"fmt"
	"strings"
)

// interpolate expands environment references in one scalar value of a
// pipeline file, before the value is converted to its type:
//
//	${VAR}          the value of VAR; an error when VAR is unset
//	${VAR:default}  the value of VAR, or default when VAR is unset or empty
//	$${             a literal "${"
//
// A default runs to the first "}", so it cannot itself hold a "}" or another
// reference. The result is not scanned again: a variable's value that contains
// "${" stays as it is. Note that a default starts right after the ":", so the
// shell's "${VAR:-x}" has the default "-x" here.
func interpolate(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			// "$${" is the escape: s[:i] already ends in the first "$".
			b.WriteString(s[:i])
			b.WriteByte('{')
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated %q (write $${ for a literal ${)", s[i:])
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":")
		if !validVarName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${%s}", name, ref)
		}
		val, ok := "", false
		if env != nil {
			val, ok = env(name)
		}
		switch {
		case hasDef && val == "":
			val = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:default} to give a default)", name, name)
		}
		b.WriteString(val)
	}
}

// validVarName reports whether name is a POSIX environment variable name.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
