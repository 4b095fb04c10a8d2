// Package expr owns a view's where expression: type-checking it against a
// topic schema (CheckWhere, which validation uses), compiling it, matching
// events against it, and the set of fields it reads.
//
// A where expression is expr-lang (https://expr-lang.org) over the event's
// fields as typed variables: string → string, long and int → int64, double →
// float64, bool → bool, timestamp → time.Time in UTC. An optional field is a
// pointer that is nil when the event lacks it, so `bytes > 0` fails at run
// time on such an event while `bytes != nil && bytes > 0` and
// `(bytes ?? 0) > 0` do not. now() is disabled and date() works in UTC,
// because a where must give the same answer in the speed and the batch layer
// whenever it runs. Expressions of the usual filter shape (comparisons of a
// field with a literal joined by &&, || and !) run natively, without the VM.
//
// It imports only the event package of Lambdaflow and keeps no global state.
package expr
