package pipelines

import (
	"fmt"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Every view also has a topic of its own in the log: the speed layer appends
// the current row of each open window at most once per emit.interval
// (final: false), the row of each window it finalises (final: true) and a
// tombstone for each session window that merged into another (_deleted:
// true); the batch layer appends a row for each window it recomputes. Sinks
// deliver views by reading that topic like any other, so a view sink gets a
// durable position, lag, retries and dead letters for free, and a later row
// for the same window (the final row, a batch correction) overwrites the
// earlier one through the sink's upsert. viewrow lays the events out.

// DeadLetterSuffix names a sink's dead-letter topic: <sink>_dlq.
const DeadLetterSuffix = "_dlq"

// TopicByName returns the named user topic, or nil.
func (p *Pipeline) TopicByName(name string) *Topic {
	for i := range p.Topics {
		if p.Topics[i].Name == name {
			return &p.Topics[i]
		}
	}
	return nil
}

// ViewByName returns the named view, or nil.
func (p *Pipeline) ViewByName(name string) *View {
	for i := range p.Views {
		if p.Views[i].Name == name {
			return &p.Views[i]
		}
	}
	return nil
}

// AggregateType is the type of an aggregate's output column given the type of
// its input field, as the aggregate registry defines it: count and
// count_distinct give long, avg and quantile double, sum keeps long for
// integer input and double otherwise, and min, max, first and last keep the
// field's type. An unknown function keeps the field's type.
func AggregateType(a Aggregate, field event.FieldType) event.FieldType {
	f, ok := aggregate.Lookup(a.Func)
	if !ok {
		return field
	}
	return f.Result(field)
}

// ViewSchema is the schema of a view's row values, laid out by
// viewrow.Schema: window_start, window_end, the group-by fields, then the
// aggregates, in file order (viewrow.Columns adds what sinks store besides,
// viewrow.TopicSchema what the view's topic carries). Aggregates are optional (an empty window has no min), group-by
// fields keep their topic's requiredness.
func ViewSchema(v *View, from *Topic) event.Schema {
	var group, aggs []event.Field
	for _, g := range v.GroupBy {
		if i := from.Schema.Index(g); i >= 0 {
			f := from.Schema[i]
			group = append(group, event.Field{Name: f.Name, Type: f.Type, Required: f.Required})
		}
	}
	for _, a := range v.Aggregates {
		var ft event.FieldType
		if i := from.Schema.Index(a.Field); i >= 0 {
			ft = from.Schema[i].Type
		}
		aggs = append(aggs, event.Field{Name: a.Name, Type: AggregateType(a, ft)})
	}
	return viewrow.Schema(group, aggs)
}

// ViewTopic is the log topic holding a view's rows. It has the view's name and
// one partition per partition of the source topic, keyed by nothing (rows
// of one window group go to the partition their events came from).
func (p *Pipeline) ViewTopic(v *View) Topic {
	from := p.TopicByName(v.From)
	t := Topic{Name: v.Name, Partitions: 1, Retention: v.Retention, Time: viewrow.ColWindowStart}
	if from != nil {
		t.Partitions = from.Partitions
		t.Retention = from.Retention
		t.Schema = viewrow.TopicSchema(ViewSchema(v, from))
	}
	if t.Retention <= 0 {
		t.Retention = defaultRetention
	}
	return t
}

// DeadLetterSchema is the schema of a sink's dead-letter topic.
var deadLetterSchema = event.Schema{
	{Name: "source", Type: event.TypeString, Required: true},
	{Name: "partition", Type: event.TypeLong, Required: true},
	{Name: "offset", Type: event.TypeLong, Required: true},
	{Name: "record", Type: event.TypeString, Required: true},
	{Name: "error", Type: event.TypeString, Required: true},
	{Name: "time", Type: event.TypeTimestamp, Required: true},
}

// DeadLetterTopic is the log topic holding the records sink s could never
// write, with the reason and the time.
func (p *Pipeline) DeadLetterTopic(s *Sink) Topic {
	return Topic{
		Name: s.Name + DeadLetterSuffix, Partitions: 1, Time: "time",
		Retention: Duration(30 * 24 * 3600e9),
		Schema:    append(event.Schema(nil), deadLetterSchema...),
	}
}

// LogTopics lists every topic the log must hold: the user topics, one per
// view, one of partial states per view and one dead-letter topic per sink.
func (p *Pipeline) LogTopics() []Topic {
	out := append([]Topic(nil), p.Topics...)
	for i := range p.Views {
		out = append(out, p.ViewTopic(&p.Views[i]))
	}
	for i := range p.Views {
		out = append(out, p.PartialsTopic(&p.Views[i]))
	}
	for i := range p.Sinks {
		out = append(out, p.DeadLetterTopic(&p.Sinks[i]))
	}
	return out
}

// SourceTopic returns the log topic behind a sink source name: a user topic
// or a view's topic. ok is false when neither exists.
func (p *Pipeline) SourceTopic(name string) (t Topic, isView bool, ok bool) {
	if tp := p.TopicByName(name); tp != nil {
		return *tp, false, true
	}
	if v := p.ViewByName(name); v != nil {
		return p.ViewTopic(v), true, true
	}
	return Topic{}, false, false
}

// Kinds of log topics (TopicKind).
const (
	KindEvents      = "events"        // a topic clients publish to
	KindView        = "view"          // a view's rows, written by the speed and batch layers
	KindDeadLetters = "dead_letters"  // a sink's dead letters, written by the sink
	KindPartials    = "view_partials" // a view's partial states, written and merged by the speed layer
)

// TopicKind says what a log topic holds, and for the topics the pipeline
// derives (a view's rows, a sink's dead letters) why clients may not
// publish to it and what to do instead; refusal is empty for a topic
// clients publish to. ok is false when the log has no such topic.
func (p *Pipeline) TopicKind(name string) (kind, refusal string, ok bool) {
	if p.TopicByName(name) != nil {
		return KindEvents, "", true
	}
	if v := p.ViewByName(name); v != nil {
		return KindView, fmt.Sprintf("topic %q holds the rows of view %s, which the speed and batch layers write; publish to its source topic %q instead", name, v.Name, v.From), true
	}
	if v := p.ViewByName(strings.TrimSuffix(name, PartialsSuffix)); v != nil && strings.HasSuffix(name, PartialsSuffix) {
		return KindPartials, fmt.Sprintf("topic %q holds the partial states of view %s, which the speed layer writes and merges; publish to its source topic %q instead", name, v.Name, v.From), true
	}
	for i := range p.Sinks {
		if p.Sinks[i].Name+DeadLetterSuffix == name {
			return KindDeadLetters, fmt.Sprintf("topic %q holds the dead letters of sink %s, which the sink writes; replay them with POST /v1/sinks/%s/dlq/replay (lambdaflow dlq replay %s)", name, p.Sinks[i].Name, p.Sinks[i].Name, p.Sinks[i].Name), true
		}
	}
	return "", "", false
}

// TopicNames lists the topics clients publish to, in file order.
func (p *Pipeline) TopicNames() []string {
	out := make([]string, len(p.Topics))
	for i := range p.Topics {
		out[i] = p.Topics[i].Name
	}
	return out
}

// ViewNames lists the views, in file order.
func (p *Pipeline) ViewNames() []string {
	out := make([]string, len(p.Views))
	for i := range p.Views {
		out[i] = p.Views[i].Name
	}
	return out
}
