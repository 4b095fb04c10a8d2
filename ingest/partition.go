package ingest

import (
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

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
