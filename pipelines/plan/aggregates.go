package plan

import (
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// The view's aggregates, compiled by package aggregate. A State holds every
// aggregate of one (group key, window); see aggregate.Set for the semantics,
// which are identical in both layers.

// NewState returns the empty state of all the view's aggregates.
func (p *Plan) NewState() *aggregate.State { return p.aggs.NewState() }

// Update adds one event to the state. The caller has already checked Match
// and assigned the event to this state's key and window.
func (p *Plan) Update(s *aggregate.State, e *event.Event) { p.aggs.Update(s, e) }

// Merge adds src into dst; src is unchanged. Merging is associative and
// commutative: any grouping of partial states of the same events finalizes
// to the same values.
func (p *Plan) Merge(dst, src *aggregate.State) { p.aggs.Merge(dst, src) }

// Finalize returns the aggregates' values in the view's order, typed as
// Columns says. The state is not changed.
func (p *Plan) Finalize(s *aggregate.State) []event.Value { return p.aggs.Finalize(s) }

// AppendFinal is Finalize appending to dst, for callers that reuse a buffer.
func (p *Plan) AppendFinal(dst []event.Value, s *aggregate.State) []event.Value {
	return p.aggs.AppendFinal(dst, s)
}

// UnmarshalState decodes a state written by aggregate.State.MarshalBinary
// for a view with the same aggregates.
func (p *Plan) UnmarshalState(data []byte) (*aggregate.State, error) {
	return p.aggs.UnmarshalState(data)
}
