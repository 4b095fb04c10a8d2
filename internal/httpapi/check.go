package httpapi

import "context"

// Check is one part's readiness, named as /readyz reports it ("log",
// "ingest", "sink warehouse"). Ready returns nil when the part can do its
// work, or an error saying what is wrong; it must answer within ctx.
type Check struct {
	Name  string
	Ready func(ctx context.Context) error
}
