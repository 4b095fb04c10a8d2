package sinks

import (
	"math"
	"reflect"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// FuzzDecodeDeadLetterRecord reads dead-letter records (JSON from the log,
// replayed into a table): no panic, and what decodes re-encodes to a
// record that decodes to the same values.
func FuzzDecodeDeadLetterRecord(f *testing.F) {
	cols := event.Schema{
		{Name: "s", Type: event.TypeString}, {Name: "l", Type: event.TypeLong}, {Name: "i", Type: event.TypeInt},
		{Name: "d", Type: event.TypeDouble}, {Name: "b", Type: event.TypeBool}, {Name: "ts", Type: event.TypeTimestamp},
	}
	f.Add(encodeRecord(cols, []event.Value{{S: "x", Valid: true}, {I: -7, Valid: true}, {I: 3, Valid: true}, {F: math.Inf(1), Valid: true}, {I: 1, Valid: true}, {I: 1764950000123456, Valid: true}}))
	f.Add(encodeRecord(cols, []event.Value{{S: "\xff", Valid: true}, {}, {}, {F: math.NaN(), Valid: true}, {}, {}}))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"l":1e3,"d":"-Inf","ts":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		vals, err := decodeRecord(cols, rec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again := encodeRecord(cols, vals)
		back, err := decodeRecord(cols, again)
		if err != nil {
			t.Fatalf("%s decodes, its re-encoding %s does not: %v", rec, again, err)
		}
		for i := range vals {
			// NaN is not equal to itself: compare bits.
			if vals[i].Valid && cols[i].Type == event.TypeDouble && math.Float64bits(vals[i].F) == math.Float64bits(back[i].F) {
				continue
			}
			if !reflect.DeepEqual(vals[i], back[i]) {
				t.Fatalf("%s: column %s %+v, after re-encoding %+v", rec, cols[i].Name, vals[i], back[i])
			}
		}
	})
}
