package broker

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func allTypesSchema() event.Schema {
	return event.Schema{
		{Name: "s", Type: event.TypeString},
		{Name: "l", Type: event.TypeLong},
		{Name: "i", Type: event.TypeInt},
		{Name: "d", Type: event.TypeDouble},
		{Name: "b", Type: event.TypeBool},
		{Name: "t", Type: event.TypeTimestamp},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	schema := allTypesSchema()
	v := func(s string, i int64, f float64) event.Value {
		return event.Value{S: s, I: i, F: f, Valid: true}
	}
	null := event.Value{}
	const ingest = 1_700_000_000_000_000
	events := []event.Event{
		{ID: "a", Time: ingest - 5, Values: []event.Value{v("héllo", 0, 0), v("", math.MaxInt64, 0), v("", -7, 0), v("", 0, -1.5), v("", 1, 0), v("", ingest+123, 0)}},
		{ID: "", Time: ingest + 1_000_000, Values: []event.Value{v("", 0, 0), v("", math.MinInt64, 0), v("", 0, 0), v("", 0, math.Inf(1)), v("", 0, 0), v("", 0, 0)}},
		{ID: "c-with-nulls", Time: 0, Values: []event.Value{null, v("", 42, 0), null, null, null, v("", -1, 0)}},
		{ID: "all-null", Time: -1, Values: []event.Value{null, null, null, null, null, null}},
	}
	data := AppendEntry([]byte("prefix"), schema, ingest, events)
	if string(data[:6]) != "prefix" {
		t.Fatalf("AppendEntry did not append to dst")
	}
	got, err := DecodeEntry(data[6:], schema, nil)
	if err != nil {
		t.Fatalf("DecodeEntry: %v", err)
	}
	want := make([]event.Event, len(events))
	for i, e := range events {
		e.Ingest = ingest
		want[i] = e
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Reusing dst: same result, dst's array reused.
	dst := make([]event.Event, 0, 8)
	got2, err := DecodeEntry(data[6:], schema, dst)
	if err != nil || !reflect.DeepEqual(got2, want) || &got2[:1][0] != &dst[:1][0] {
		t.Fatalf("decode into dst: err %v, equal %v, reused %v", err, reflect.DeepEqual(got2, want), &got2[:1][0] == &dst[:1][0])
	}
	// Decoded strings must not alias data.
	for i := range data {
		data[i] = 0
	}
	if got[0].Values[0].S != "héllo" || got[2].ID != "c-with-nulls" {
		t.Fatalf("decoded strings alias the payload: %q %q", got[0].Values[0].S, got[2].ID)
	}
}

func TestEntryDenseHasNoBitmap(t *testing.T) {
	schema := testSchema()
	dense := AppendEntry(nil, schema, 1, testEvents("e", 0, 3, 1))
	if dense[3] != 0 {
		t.Fatalf("flags = %#x for an entry without nulls, want 0", dense[3])
	}
	ev := testEvents("e", 0, 3, 1)
	ev[1].Values[2].Valid = false
	sparse := AppendEntry(nil, schema, 1, ev)
	if sparse[3] != flagNulls {
		t.Fatalf("flags = %#x for an entry with a null, want %#x", sparse[3], flagNulls)
	}
	// One bitmap byte per event (6 fields), minus the omitted value.
	if d := len(sparse) - len(dense); d != 3-len("eu-west")-1 {
		t.Fatalf("sparse entry is %d bytes longer than dense, want %d", d, 3-len("eu-west")-1)
	}
}

func TestEntrySchemaEvolution(t *testing.T) {
	old := event.Schema{
		{Name: "host", Type: event.TypeString},
		{Name: "n", Type: event.TypeInt},
		{Name: "gone", Type: event.TypeString},
	}
	events := []event.Event{
		{ID: "1", Time: 10, Values: []event.Value{{S: "a", Valid: true}, {I: 3, Valid: true}, {S: "x", Valid: true}}},
		{ID: "2", Time: 20, Values: []event.Value{{S: "b", Valid: true}, {}, {S: "y", Valid: true}}},
	}
	data := AppendEntry(nil, old, 5, events)

	f := func(name string, schema event.Schema, want [][]event.Value) {
		t.Helper()
		got, err := DecodeEntry(data, schema, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range want {
			if !reflect.DeepEqual(got[i].Values, want[i]) {
				t.Fatalf("%s: event %d values %+v, want %+v", name, i, got[i].Values, want[i])
			}
		}
	}
	// A new optional field reads as null; "gone" is dropped; order follows
	// the current schema; int widens to long and to double.
	f("evolved", event.Schema{
		{Name: "added", Type: event.TypeString},
		{Name: "n", Type: event.TypeLong},
		{Name: "host", Type: event.TypeString},
	}, [][]event.Value{
		{{}, {I: 3, Valid: true}, {S: "a", Valid: true}},
		{{}, {}, {S: "b", Valid: true}},
	})
	f("to double", event.Schema{{Name: "n", Type: event.TypeDouble}}, [][]event.Value{
		{{F: 3, Valid: true}},
		{{}},
	})
	f("empty schema", event.Schema{}, [][]event.Value{{}, {}})

	// Narrowing reads stay valid values of the new type: any non-zero
	// integer is the bool true, a long outside 32 bits is a null int.
	wide := AppendEntry(nil, event.Schema{{Name: "v", Type: event.TypeLong}}, 0, []event.Event{
		{ID: "a", Values: []event.Value{{I: 72, Valid: true}}},
		{ID: "b", Values: []event.Value{{I: 0, Valid: true}}},
		{ID: "c", Values: []event.Value{{I: math.MaxInt32 + 1, Valid: true}}},
		{ID: "d", Values: []event.Value{{I: math.MinInt32, Valid: true}}},
	})
	data = wide
	f("long to bool", event.Schema{{Name: "v", Type: event.TypeBool}}, [][]event.Value{
		{{I: 1, Valid: true}}, {{I: 0, Valid: true}}, {{I: 1, Valid: true}}, {{I: 1, Valid: true}},
	})
	f("long to int", event.Schema{{Name: "v", Type: event.TypeInt}}, [][]event.Value{
		{{I: 72, Valid: true}}, {{I: 0, Valid: true}}, {{}}, {{I: math.MinInt32, Valid: true}},
	})
	data = AppendEntry(nil, old, 5, events)

	_, err := DecodeEntry(data, event.Schema{{Name: "host", Type: event.TypeLong}}, nil)
	if !errors.Is(err, ErrSchemaMismatch) {
		t.Fatalf("string read as long: err %v, want ErrSchemaMismatch", err)
	}
}

func TestDecodeEntryCorrupt(t *testing.T) {
	schema := testSchema()
	ev := testEvents("e", 0, 5, 1_700_000_000_000_000)
	ev[2].Values[1].Valid = false
	valid := AppendEntry(nil, schema, 1_700_000_000_000_000, ev)
	if _, err := DecodeEntry(valid, schema, nil); err != nil {
		t.Fatalf("valid entry: %v", err)
	}
	// Every strict prefix is an error, never a panic.
	for n := range len(valid) {
		if got, err := DecodeEntry(valid[:n], schema, nil); !errors.Is(err, ErrCorruptEntry) {
			t.Fatalf("prefix of %d/%d bytes: err %v (%d events), want ErrCorruptEntry", n, len(valid), err, len(got))
		}
	}
	mod := func(f func([]byte) []byte) []byte {
		return f(append([]byte(nil), valid...))
	}
	for name, data := range map[string][]byte{
		"bad magic":    mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version 2":    mod(func(b []byte) []byte { b[2] = 2; return b }),
		"unknown flag": mod(func(b []byte) []byte { b[3] |= 0x80; return b }),
		"trailing":     mod(func(b []byte) []byte { return append(b, 0) }),
		"huge count":   append([]byte{'L', 'F', 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}, make([]byte, 8)...),
		"huge fields":  append([]byte{'L', 'F', 1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 8)...),
		"bad type":     {'L', 'F', 1, 0, 0, 0, 1, 1, 'a', 9},
		"bool 2":       {'L', 'F', 1, 0, 0, 1, 1, 1, 'a', byte(event.TypeBool), 0, 0, 2},
		"long string":  {'L', 'F', 1, 0, 0, 1, 1, 1, 'a', byte(event.TypeString), 0, 0, 100, 'x'},
	} {
		if _, err := DecodeEntry(data, schema, nil); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("%s: err %v, want ErrCorruptEntry", name, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	schema := testSchema()
	f.Add(AppendEntry(nil, schema, 1_700_000_000_000_000, testEvents("e", 0, 3, 1_700_000_000_000_000)))
	ev := testEvents("n", 0, 2, 0)
	ev[0].Values[0].Valid = false
	ev[1].Values[5].Valid = false
	f.Add(AppendEntry(nil, schema, 0, ev))
	f.Add(AppendEntry(nil, allTypesSchema(), -5, []event.Event{{ID: "x", Values: make([]event.Value, 6)}}))
	f.Add([]byte{'L', 'F', 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range []event.Schema{schema, allTypesSchema()} {
			events, err := DecodeEntry(data, s, nil)
			if err != nil {
				if !errors.Is(err, ErrCorruptEntry) && !errors.Is(err, ErrSchemaMismatch) {
					t.Fatalf("error %v wraps neither ErrCorruptEntry nor ErrSchemaMismatch", err)
				}
				continue
			}
			if len(events) > len(data)/2 {
				t.Fatalf("%d events from %d bytes", len(events), len(data))
			}
			for _, e := range events {
				if len(e.Values) != len(s) {
					t.Fatalf("event has %d values, schema %d fields", len(e.Values), len(s))
				}
			}
			// What decodes re-encodes to something that decodes the same.
			again, err := DecodeEntry(AppendEntry(nil, s, eventsIngest(events), events), s, nil)
			if err != nil {
				t.Fatalf("re-encoded entry: %v", err)
			}
			if !equalEvents(again, events) {
				t.Fatalf("re-encoded entry decodes differently")
			}
		}
	})
}

func eventsIngest(events []event.Event) int64 {
	if len(events) == 0 {
		return 0
	}
	return events[0].Ingest
}

// equalEvents compares events treating NaN doubles as equal to themselves.
func equalEvents(a, b []event.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Time != b[i].Time || a[i].Ingest != b[i].Ingest || len(a[i].Values) != len(b[i].Values) {
			return false
		}
		for j := range a[i].Values {
			x, y := a[i].Values[j], b[i].Values[j]
			if x.S != y.S || x.I != y.I || x.Valid != y.Valid || math.Float64bits(x.F) != math.Float64bits(y.F) {
				return false
			}
		}
	}
	return true
}

func BenchmarkDecodeEntry(b *testing.B) {
	schema := testSchema()
	for _, k := range []int{64, 1000} {
		b.Run("events="+strconv.Itoa(k), func(b *testing.B) {
			data := AppendEntry(nil, schema, 1_700_000_000_000_000, testEvents("0195f2c4-7d1e-7c1a-9c3b", 0, k, 1_700_000_000_000_000))
			var dst []event.Event
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var err error
				if dst, err = DecodeEntry(data, schema, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(k)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(len(data))/float64(k), "B/event")
		})
	}
}

func BenchmarkAppendEntry(b *testing.B) {
	schema := testSchema()
	const k = 1000
	events := testEvents("0195f2c4-7d1e-7c1a-9c3b", 0, k, 1_700_000_000_000_000)
	buf := AppendEntry(nil, schema, 1_700_000_000_000_000, events)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEntry(buf[:0], schema, 1_700_000_000_000_000, events)
	}
	b.ReportMetric(float64(b.N)*k/b.Elapsed().Seconds(), "events/s")
}
