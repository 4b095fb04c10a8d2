package batch

import (
	"cmp"
	"math"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// A dictionary page holds a column's distinct values, PLAIN, in the order
// the dictionary numbered them; parquet-go numbers them as they first
// appear. In value order the page compresses better (neighbouring values
// share their high bytes: in the backfill's daily files ~0.1 B/row less
// for distances and the measured times each), and the indices are as
// random either way. So a numeric column that a file's plan
// dictionary-encodes gets its dictionary seeded, before the file's rows,
// with the file's distinct values in order (the survey saw them all):
// every row then finds its value numbered already. The format leaves a
// dictionary's order to the writer.

// dictSeeds holds, per column of a file writer's schema, the values its
// dictionary starts from in the current file (nil: none, first-appearance
// order).
type dictSeeds struct {
	cols    [][]parquet.Value
	indexes []int32 // scratch for Insert
}

// seededType is a column type whose dictionaries start from the column's
// seed in each file (parquet.Type: only NewDictionary differs).
type seededType struct {
	parquet.Type
	seeds *dictSeeds
	col   int
}

func (t seededType) NewDictionary(columnIndex, numValues int, data encoding.Values) parquet.Dictionary {
	return &seededDictionary{Dictionary: t.Type.NewDictionary(columnIndex, numValues, data), seeds: t.seeds, col: t.col}
}

// seededDictionary re-seeds its dictionary whenever the writer resets it
// for a file.
type seededDictionary struct {
	parquet.Dictionary
	seeds *dictSeeds
	col   int
}

func (d *seededDictionary) Reset() {
	d.Dictionary.Reset()
	vals := d.seeds.cols[d.col]
	if len(vals) == 0 {
		return
	}
	idx := slices.Grow(d.seeds.indexes[:0], len(vals))[:len(vals)]
	d.Dictionary.Insert(idx, vals)
	d.seeds.indexes = idx
}

// typedField is a schema field with another type.
type typedField struct {
	parquet.Field
	typ parquet.Type
}

func (f typedField) Type() parquet.Type { return f.typ }

// seedsFor sets, for each numeric column that plan dictionary-encodes and
// whose every value the survey kept, its seed: the distinct values in
// order. Call it before reset.
func (s *encodingSurvey) seedsFor(plan encodingPlan, seeds *dictSeeds) {
	n := len(s.ls.fields)
	if len(seeds.cols) != n+metaColumns {
		seeds.cols = make([][]parquet.Value, n+metaColumns)
	}
	for i := range seeds.cols {
		seeds.cols[i] = seeds.cols[i][:0]
	}
	for i := range s.cols {
		typ, col := s.column(i)
		c := &s.cols[i]
		if col >= len(plan) || plan[col] != encDict || c.values == 0 || c.values != int64(len(c.vals)) {
			continue
		}
		switch typ {
		case event.TypeInt, event.TypeLong, event.TypeTimestamp, event.TypeDouble:
		default:
			continue
		}
		seeds.cols[col] = appendSortedDistinct(seeds.cols[col], typ, c.vals)
	}
}

// appendSortedDistinct appends the distinct values of vals (as the survey
// keeps them: integers as their bits, doubles as math.Float64bits) to dst
// in dictionary order, as Parquet values of typ.
func appendSortedDistinct(dst []parquet.Value, typ event.FieldType, vals []uint64) []parquet.Value {
	for _, v := range sortedDistinct(nil, typ, vals) {
		switch typ {
		case event.TypeInt:
			dst = append(dst, parquet.Int32Value(int32(v)))
		case event.TypeDouble:
			dst = append(dst, parquet.DoubleValue(math.Float64frombits(v)))
		default:
			dst = append(dst, parquet.Int64Value(int64(v)))
		}
	}
	return dst
}

// sortedDistinct sets dst to the distinct values of vals (bits, as the
// survey keeps them) in a seeded dictionary's order: by value, doubles
// with NaNs first and ties (-0 and +0, NaNs) by bits.
func sortedDistinct(dst []uint64, typ event.FieldType, vals []uint64) []uint64 {
	dst = append(dst[:0], vals...)
	if typ == event.TypeDouble {
		slices.SortFunc(dst, func(a, b uint64) int {
			return cmp.Or(cmp.Compare(math.Float64frombits(a), math.Float64frombits(b)), cmp.Compare(a, b))
		})
	} else {
		slices.SortFunc(dst, func(a, b uint64) int { return cmp.Compare(int64(a), int64(b)) })
	}
	return slices.Compact(dst)
}
