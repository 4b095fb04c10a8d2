package pipelines

import "testing"

func TestInterpolate(t *testing.T) {
	env := MapEnv(map[string]string{
		"HOST":  "db.local",
		"PORT":  "5432",
		"EMPTY": "",
		"REF":   "${HOST}",
	})
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "", want: ""},
		{in: "${HOST}", want: "db.local"},
		{in: "postgres://${HOST}:${PORT}/x", want: "postgres://db.local:5432/x"},
		{in: "${MISSING:fallback}", want: "fallback"},
		{in: "${MISSING:}", want: ""},
		{in: "${HOST:fallback}", want: "db.local"},
		{in: "${EMPTY:fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${MISSING:127.0.0.1:8080}", want: "127.0.0.1:8080"},
		{in: "${MISSING:a b/c?d=e}", want: "a b/c?d=e"},
		{in: "${REF}", want: "${HOST}"},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost: $5 and $${x} and ${PORT}", want: "cost: $5 and ${x} and 5432"},
		{in: "$HOST", want: "$HOST"},
		{in: "a}b", want: "a}b"},
		{in: "${MISSING}", err: "environment variable MISSING is not set (write ${MISSING:default} to give a default)"},
		{in: "x ${HOST} ${MISSING}", err: "environment variable MISSING is not set (write ${MISSING:default} to give a default)"},
		{in: "${}", err: `invalid variable name "" in ${}`},
		{in: "${:x}", err: `invalid variable name "" in ${:x}`},
		{in: "${A-B}", err: `invalid variable name "A-B" in ${A-B}`},
		{in: "${HOST", err: `unterminated "${HOST" (write $${ for a literal ${)`},
		{in: "${MISSING:-x}", want: "-x"},
	} {
		got, err := interpolate(c.in, env)
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("interpolate(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("interpolate(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestInterpolateWithoutEnv(t *testing.T) {
	if got, err := interpolate("${A:x}", nil); err != nil || got != "x" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := interpolate("${A}", nil); err == nil {
		t.Error("want an error for an unset variable with a nil env")
	}
}
