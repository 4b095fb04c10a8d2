// Package aggregate owns the aggregate functions of views: the registry that
// says what each is (name, arguments and the field types they accept, result
// type, docs), and their implementation — the per-window State, Update,
// Merge, Finalize, the exact sums and sketches, and the state's versioned
// binary encoding (codec.go, pinned by the plan package's
// testdata/agg_state_v1.txt).
//
// Loading, validation and the JSON Schema of the pipeline file read the
// registry (Lookup, Funcs, Names); plans compile a view's calls into a Set
// with a Builder; both layers run that Set through their plan.
//
// The built-in functions share one heap block per state, laid out per view,
// and fused update code specialised per input type (update.go): that is
// what makes the speed layer fast. A new function does not touch that code:
// it is one file declaring a Func with New and an Accumulator, and one line
// in the registry table (registry.go).
//
// It imports only the event package of Lambdaflow, does no I/O and keeps no
// mutable global state.
package aggregate
