package event

import (
	"encoding/binary"
	"math"
)

// A group key stands for a tuple of values wherever equal tuples must meet:
// the group-by values of view rows in the serving store and in the batch
// layer's result, the key columns of rows within one sink write. Equal
// tuples give equal keys and different tuples different keys, whatever the
// values' types: each value is a byte 0 for null, or a byte 1 followed by
// its integer and its double's bits (8 bytes big-endian each), its string's
// length (8 bytes big-endian) and the string's bytes. Keys are compared as
// strings to order rows of one window in query results.
//
// It is not the plan's group key (plan.Plan.Key), which is typed, compact
// and persisted in checkpoints.

// appendGroupKey appends the group key of vals to b.
func appendGroupKey(b []byte, vals []Value) []byte {
	for _, v := range vals {
		b = AppendGroupKeyValue(b, v)
	}
	return b
}

// AppendGroupKeyValue appends the part of a group key that stands for v.
func AppendGroupKeyValue(b []byte, v Value) []byte {
	if !v.Valid {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(v.I))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(v.F))
	b = binary.BigEndian.AppendUint64(b, uint64(len(v.S)))
	return append(b, v.S...)
}

// GroupKey returns the group key of vals as a string, for a map key.
func GroupKey(vals []Value) string {
	return string(appendGroupKey(make([]byte, 0, 32), vals))
}
