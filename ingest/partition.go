package ingest

import (
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Partition returns the partition of an event whose key field has the
// canonical text key (see the package doc), for a topic of n partitions:
// FNV-1a 32 of the bytes, modulo n (event.PartitionOf). External
// producers that publish to the log directly use it, or reimplement it, to
// place events as ingest does.
func Partition(key string, n int) int {
	return event.PartitionOf(key, n)
}

// partitioner places the events of one topic.
type partitioner struct {
	n      int
	keyIdx int // position of the key field in the schema, or -1
	keyTyp event.FieldType
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

// of returns ev's partition (event.EventPartition): by its key value,
// or by its id when the topic has no key or the value is null.
func (p partitioner) of(ev *event.Event) int {
	return event.EventPartition(ev, p.keyIdx, p.keyTyp, p.n)
}
