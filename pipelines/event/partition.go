package event

import (
	"math"
	"strconv"
)

// The partitioning rules. Whatever appends to a topic places its records by
// these functions — ingest the events of user topics, the speed and the
// batch layer the rows of view topics, tests that append to the log
// directly — so that one key lands in one partition whoever writes it.
// Producers that write to the log without Lambdaflow reimplement the event
// rule from its description in the ingest package doc.

// FNV-1a, 32 bit (the constants of hash/fnv), spelled out so that
// partitioning allocates nothing.
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

func fnv1a32[T ~string | ~[]byte](s T) uint32 {
	h := uint32(fnvOffset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnvPrime32
	}
	return h
}

// PartitionOf returns the partition of the key text key in a topic of n
// partitions: FNV-1a 32 of its bytes, modulo n; 0 when n <= 1.
func PartitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(fnv1a32(key) % uint32(n))
}

// EventPartition returns the partition of ev in a topic of n partitions
// whose key field is at keyIdx of its schema, of type keyType (keyIdx -1:
// the topic has no key field): PartitionOf the canonical text of the key
// value (AppendCanonical), or of the event id when there is no key field or
// the value is null. It allocates nothing.
func EventPartition(ev *Event, keyIdx int, keyType FieldType, n int) int {
	if n <= 1 {
		return 0
	}
	if keyIdx >= 0 && keyIdx < len(ev.Values) && ev.Values[keyIdx].Valid {
		v := ev.Values[keyIdx]
		if keyType == TypeString {
			return int(fnv1a32(v.S) % uint32(n))
		}
		// The longest canonical text of a number is 24 bytes.
		var buf [32]byte
		return int(fnv1a32(AppendCanonical(buf[:0], keyType, v)) % uint32(n))
	}
	return int(fnv1a32(ev.ID) % uint32(n))
}

// AppendCanonical appends the canonical text of a non-null value of type t,
// the text an event key is partitioned by: a string is itself; long, int
// and timestamp (UTC microseconds) are decimal ("-42"); bool is true or
// false; double is the shortest decimal that round-trips (strconv 'g', -1:
// "0.1", "1e+21").
func AppendCanonical(b []byte, t FieldType, v Value) []byte {
	switch t {
	case TypeString:
		return append(b, v.S...)
	case TypeDouble:
		return strconv.AppendFloat(b, v.F, 'g', -1, 64)
	case TypeBool:
		return strconv.AppendBool(b, v.I != 0)
	default:
		return strconv.AppendInt(b, v.I, 10)
	}
}

// ViewRowPartition returns the partition of a view row with group-by values
// group in the view's topic of n partitions: FNV-1a 32 of the text
// fmt.Sprintf("%t|%d|%x|%q;", v.Valid, v.I, math.Float64bits(v.F), v.S) of
// each value in turn, modulo n; 0 when n <= 1. The speed layer's rows and
// the batch layer's corrections of one window and group so land in one
// partition, in order.
func ViewRowPartition(group []Value, n int) int {
	if n <= 1 {
		return 0
	}
	var buf [64]byte
	return int(fnv1a32(appendGroupText(buf[:0], group)) % uint32(n))
}

// appendGroupText appends the text ViewRowPartition hashes, without fmt.
func appendGroupText(b []byte, group []Value) []byte {
	for _, v := range group {
		b = strconv.AppendBool(b, v.Valid)
		b = append(b, '|')
		b = strconv.AppendInt(b, v.I, 10)
		b = append(b, '|')
		b = strconv.AppendUint(b, math.Float64bits(v.F), 16)
		b = append(b, '|')
		b = strconv.AppendQuote(b, v.S)
		b = append(b, ';')
	}
	return b
}
