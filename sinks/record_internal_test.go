package sinks

import (
	"math"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestRecordRoundTrip(t *testing.T) {
	cols := event.Schema{
		{Name: "s", Type: event.TypeString}, {Name: "l", Type: event.TypeLong},
		{Name: "i", Type: event.TypeInt}, {Name: "d", Type: event.TypeDouble},
		{Name: "b", Type: event.TypeBool}, {Name: "ts", Type: event.TypeTimestamp},
	}
	f := func(name string, vals []event.Value) {
		t.Helper()
		rec := encodeRecord(cols, vals)
		got, err := decodeRecord(cols, rec)
		if err != nil {
			t.Fatalf("%s: decode %s: %v", name, rec, err)
		}
		for i := range vals {
			w, g := vals[i], got[i]
			same := w == g || (w.Valid && g.Valid && math.IsNaN(w.F) && math.IsNaN(g.F))
			if !same {
				t.Errorf("%s: column %s: %s decodes to %+v, want %+v", name, cols[i].Name, rec, g, w)
			}
		}
	}
	v := func(s string, i int64, fl float64) event.Value {
		return event.Value{S: s, I: i, F: fl, Valid: true}
	}
	f("plain", []event.Value{v("héllo \"q\" <&>", 0, 0), v("", math.MaxInt64, 0), v("", math.MinInt32, 0),
		v("", 0, 0.1), v("", 1, 0), v("", 1732541234123456, 0)})
	f("nulls", make([]event.Value, 6))
	f("edge", []event.Value{v("nul \x00 and bad \xff\xfe", 0, 0), v("", math.MinInt64, 0), v("", 0, 0),
		v("", 0, math.Inf(-1)), v("", 0, 0), v("", -1, 0)})
	f("nan", []event.Value{v("line\nbreak", 0, 0), v("", -1, 0), v("", 7, 0), v("", 0, math.NaN()), v("", 0, 0), v("", -62135596800000000, 0)})
	f("inf", []event.Value{{}, {}, {}, v("", 0, math.Inf(1)), {}, {}})
	f("tiny", []event.Value{{}, {}, {}, v("", 0, 5e-324), {}, {}})

	rec := string(encodeRecord(cols, []event.Value{v("x", 0, 0), v("", 5, 0), {}, {}, v("", 1, 0), v("", 1500, 0)}))
	want := `{"s":"x","l":5,"i":null,"d":null,"b":true,"ts":"1970-01-01T00:00:00.001500Z"}`
	if rec != want {
		t.Errorf("record %s, want %s", rec, want)
	}
	if got := string(encodeRecord(cols, nil)); got != "null" {
		t.Errorf("record of an undecodable entry %s, want null", got)
	}

	// Columns added since are null; keys dropped since are ignored.
	got, err := decodeRecord(cols, []byte(`{"s":"x","gone":1}`))
	if err != nil || got[0].S != "x" || got[1].Valid {
		t.Errorf("decode with schema drift = %+v, %v", got, err)
	}
	for _, bad := range []string{`null`, `[1]`, `{"l":"x"}`, `{"b":1}`, `{"ts":"yesterday"}`, `{"s":{"base64":"!"}}`} {
		if _, err := decodeRecord(cols, []byte(bad)); err == nil {
			t.Errorf("decodeRecord(%s) = nil error", bad)
		}
	}
	if !strings.Contains(string(encodeRecord(cols, []event.Value{v("\xff", 0, 0)})), `{"base64":"/w=="}`) {
		t.Errorf("invalid UTF-8 not kept as base64")
	}
}
