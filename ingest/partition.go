package ingest

import (
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// FNV-1a, 32 bit (the constants of hash/fnv). It is spelled out so that
// partitioning a string allocates nothing.
const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

func fnv1a32(s string) uint32 {
	h := uint32(fnvOffset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= fnvPrime32
	}
	return h
}

func fnv1a32Bytes(b []byte) uint32 {
	h := uint32(fnvOffset32)
	for _, c := range b {
		h ^= uint32(c)
		h *= fnvPrime32
	}
	return h
}

// Partition returns the partition of an event whose key field has the
// canonical text key (see the package doc), for a topic of n partitions:
// FNV-1a 32 of the bytes, modulo n. External producers that publish to the
// log directly use it, or reimplement it, to place events as ingest does.
func Partition(key string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(fnv1a32(key) % uint32(n))
}

// partitioner places the events of one topic.
type partitioner struct {
	n      int
	keyIdx int // position of the key field in the schema, or -1
	keyTyp pipelines.FieldType
}

func newPartitioner(t *pipelines.Topic) partitioner {
	p := partitioner{n: max(t.Partitions, 1), keyIdx: -1}
	if t.Key != "" {
		if i := t.Schema.Index(t.Key); i >= 0 {
			p.keyIdx = i
			p.keyTyp = t.Schema[i].Type
		}
	}
	return p
}

// of returns ev's partition: by its key value, or by its id when the topic
// has no key or the value is null.
func (p partitioner) of(ev *pipelines.Event) int {
	if p.n == 1 {
		return 0
	}
	if p.keyIdx >= 0 && ev.Values[p.keyIdx].Valid {
		v := ev.Values[p.keyIdx]
		if p.keyTyp == pipelines.TypeString {
			return int(fnv1a32(v.S) % uint32(p.n))
		}
		var buf [32]byte
		return int(fnv1a32Bytes(appendCanonical(buf[:0], p.keyTyp, v)) % uint32(p.n))
	}
	return int(fnv1a32(ev.ID) % uint32(p.n))
}
