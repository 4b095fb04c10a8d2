package sinks

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Kind is one kind of sink: what the pipeline file says of it (its name,
// keys, docs and checks, the pipelines.SinkType that loading, validation and
// the JSON Schema read) and how to open its Target. Each target folder
// declares its kinds; sinks/all lists them.
type Kind struct {
	pipelines.SinkType
	// Open connects the target of spec, a sink of this kind (its Config is
	// what NewConfig returned, filled in). p is the whole pipeline; ctx
	// bounds the opening only.
	Open func(ctx context.Context, p *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (Target, error)
}

// ConfigOf returns spec's configuration as a *C: a zero one when spec was
// built without one (as tests do), an ErrPermanent when it is another
// kind's.
func ConfigOf[C any](spec *pipelines.Sink) (*C, error) {
	switch c := spec.Config.(type) {
	case nil:
		return new(C), nil
	case *C:
		return c, nil
	}
	return nil, fmt.Errorf("sink %q: configuration %T is not a %T: %w", spec.Name, spec.Config, new(C), ErrPermanent)
}
