package batch

import (
	"math/rand/v2"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestEncodingTrial checks the trial of a numeric column's encodings on
// columns where one way is plainly smaller: values drawn from a few hundred
// scattered ones (distances) take fewer bytes as a dictionary; distinct
// increasing values (timestamps a second apart) and a handful of values in
// long sorted runs take fewer delta packed. It also checks that a file of
// bestFileRows rows or more is planned by a trial of its first rows.
func TestEncodingTrial(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	pool := make([]uint64, 300)
	for i := range pool {
		pool[i] = uint64(100 + rnd.IntN(5000))
	}
	var scattered, increasing, runs []uint64
	for i := range 1000 {
		scattered = append(scattered, pool[rnd.IntN(len(pool))])
		increasing = append(increasing, uint64(1_767_225_600_000_000+int64(i)*1_000_000))
		runs = append(runs, uint64(i/250))
	}
	var tr encodingTrial
	for _, c := range []struct {
		name string
		typ  event.FieldType
		vals []uint64
		dict bool
	}{
		{"scattered longs", event.TypeLong, scattered, true},
		{"increasing timestamps", event.TypeTimestamp, increasing, false},
		{"sorted runs", event.TypeInt, runs, false},
	} {
		if got := tr.dictionaryPays(c.typ, c.vals); got != c.dict {
			t.Errorf("%s: dictionary pays %v, want %v", c.name, got, c.dict)
		}
	}

	// The same scattered values in a file of a daily size: the trial picks
	// a dictionary where the estimate alone would not (the values change
	// at almost every row, and their deltas pack in 13 bits against the
	// dictionary's 9-bit indices plus 300 values of 8 bytes, most of
	// them zero bytes zstd removes). Files of bestFileRows rows or more are
	// tried on their first bestFileRows rows.
	schema := event.Schema{{Name: "distance", Type: event.TypeLong, Required: true}}
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range []int{1000, bestFileRows - 1, bestFileRows} {
		s := newEncodingSurvey(ls)
		evs := make([]event.Event, rows)
		for i := range evs {
			evs[i] = event.Event{Values: []event.Value{{I: int64(scattered[i%len(scattered)]), Valid: true}}}
		}
		s.observe(evs)
		p := s.plan()
		if rows == 1000 && p[0] != encDict {
			t.Errorf("%d rows: distance plan %d, want a dictionary", rows, p[0])
		}
		if s.trial.tried != 2 { // distance and _ingest_time
			t.Errorf("%d rows: %d columns tried, want 2", rows, s.trial.tried)
		}
	}
}

// TestEncodingTrialLargeFile plans files of more than bestFileRows rows:
// a busy topic's CPU share to two decimals (10,001 possible values, each
// a double with a full mantissa, which byte stream split cannot shrink)
// gets a dictionary, tried on the file's first rows and scaled; a long
// column of values in sorted runs keeps delta packing, and one with more
// distinct values than maxTracked keeps its own encoding untried.
func TestEncodingTrialLargeFile(t *testing.T) {
	schema := event.Schema{
		{Name: "cpu", Type: event.TypeDouble, Required: true},
		{Name: "runs", Type: event.TypeLong, Required: true},
		{Name: "unique", Type: event.TypeLong, Required: true},
	}
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	const rows = 200_000
	evs := make([]event.Event, rows)
	for i := range evs {
		evs[i] = event.Event{Ingest: int64(i / 1000), Values: []event.Value{
			{F: float64(rnd.IntN(10_001)) / 100, Valid: true},
			{I: int64(i / 40), Valid: true},
			{I: int64(rnd.Uint64() >> 20), Valid: true},
		}}
	}
	s := newEncodingSurvey(ls)
	s.observe(evs)
	p := s.plan()
	if p[0] != encDict {
		t.Errorf("cpu: plan %d, want a dictionary", p[0])
	}
	if p[1] == encDict {
		t.Error("runs: a dictionary, want delta packing")
	}
	if p[2] == encDict {
		t.Error("unique: a dictionary, want delta packing")
	}
	if s.trial.tried != 3 { // cpu, runs and _ingest_time; unique has too many values to track
		t.Errorf("%d columns tried, want 3", s.trial.tried)
	}
}
