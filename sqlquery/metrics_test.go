package sqlquery

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestOutcomeOf: a failed query is counted by the status the API answers
// it with, and a refusal by a limit also under the limit.
func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		err           error
		result, limit string
	}{
		{&Error{Kind: Invalid}, resultInvalid, ""},
		{&Error{Kind: NotReadOnly}, resultInvalid, ""},
		{&Error{Kind: UnknownTable, Table: "lake.x"}, resultInvalid, ""},
		{&Error{Kind: Forbidden}, resultForbidden, ""},
		{&Error{Kind: LimitExceeded, Limit: "sql.max_rows"}, resultLimit, "sql.max_rows"},
		{fmt.Errorf("attaching: %w", &Error{Kind: LimitExceeded, Limit: "sql.lake_cache"}), resultLimit, "sql.lake_cache"},
		{&Error{Kind: Unavailable}, resultUnavailable, ""},
		{&Error{Kind: NotCompiled}, resultUnavailable, ""},
		{&Error{Kind: Internal}, resultError, ""},
		{context.Canceled, resultCanceled, ""},
		{fmt.Errorf("reading rows: %w", context.Canceled), resultCanceled, ""},
		{errors.New("driver: connection lost"), resultError, ""},
	} {
		if result, limit := outcomeOf(c.err); result != c.result || limit != c.limit {
			t.Errorf("%v: %s %q, want %s %q", c.err, result, limit, c.result, c.limit)
		}
	}
}
