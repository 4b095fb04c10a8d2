package pipelines

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// A view computed by several processes (each the partitions of its topic it
// owns) meets in a topic of its own: the partial states of each source
// partition's windows, keyed by group like the view's rows, so that the
// partition of the view that a group belongs to merges them. The speed layer
// writes and reads it; nothing else should (docs/checkpoint-format.md
// describes its records).

// PartialsSuffix names a view's topic of partial states: <view>_partials.
const PartialsSuffix = "_partials"

// Kinds of a partial record (its "kind" field).
const (
	PartialOpen  = 0 // a window's state in the source partition, changed
	PartialFinal = 1 // the same, final in the source partition
	PartialGone  = 2 // a session window that no longer exists in the source partition
	PartialMark  = 3 // the source partition's progress: newest event time, idleness
)

var partialsSchema = event.Schema{
	{Name: "source", Type: event.TypeLong, Required: true},
	{Name: "epoch", Type: event.TypeLong, Required: true},
	{Name: "as_of", Type: event.TypeLong, Required: true},
	{Name: "kind", Type: event.TypeLong, Required: true},
	{Name: "key", Type: event.TypeString},
	{Name: "window_start", Type: event.TypeTimestamp},
	{Name: "window_end", Type: event.TypeTimestamp},
	{Name: "state", Type: event.TypeString},
	{Name: "newest", Type: event.TypeTimestamp},
	{Name: "idle", Type: event.TypeBool},
}

// PartialsSchema is the schema of a view's partials topic.
func PartialsSchema() event.Schema { return append(event.Schema(nil), partialsSchema...) }

// PartialsTopic is the log topic in which the source partitions of view v
// hand their windows' states to the partition of the view that merges them:
// as many partitions as the view's topic, the retention of the view's
// source (its owners remove what they have checkpointed).
func (p *Pipeline) PartialsTopic(v *View) Topic {
	vt := p.ViewTopic(v)
	return Topic{
		Name: v.Name + PartialsSuffix, Partitions: vt.Partitions, Retention: vt.Retention,
		Schema: PartialsSchema(),
	}
}
