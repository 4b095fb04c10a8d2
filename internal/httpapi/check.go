package httpapi

import (
	"context"
	"errors"
)

// Check is one part's readiness, named as /readyz reports it ("log",
// "ingest", "sink warehouse"). Ready returns nil when the part can do its
// work, or an error saying what is wrong; it must answer within ctx.
//
// /readyz is public, so it shows only the part's name and a short reason
// (Reason), never the error's text, which may name hosts, users and
// databases.
type Check struct {
	Name  string
	Ready func(ctx context.Context) error
}

// Reason is the short, public reason of a readiness failure: that of the
// first error in err's chain with a Reason() string method ("disk full",
// "unavailable", "starting"), or "down".
func Reason(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return "down"
}

// ReasonError is an error with a public reason besides its text.
type ReasonError struct {
	Err error
	Why string // the public reason
}

func (e *ReasonError) Error() string  { return e.Err.Error() }
func (e *ReasonError) Unwrap() error  { return e.Err }
func (e *ReasonError) Reason() string { return e.Why }
