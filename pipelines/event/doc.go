// Package event owns the values that flow through Lambdaflow: field types,
// topic schemas, typed values and events, and the rules every package must
// apply to them alike, so that each exists once: which partition an event or
// a view row goes to (partition.go), how values are written as JSON for
// readers (valuejson.go) and in the exact JSON form Lambdaflow stores and
// reads back (exactjson.go), how they are read from text (valuetext.go), the
// time formats, how a tuple of values becomes a group key (groupkey.go),
// how values map to Go values (GoValue), and the names of the columns
// Lambdaflow adds to a topic's fields (columns.go).
//
// It imports nothing else of Lambdaflow, does no I/O and keeps no global
// state: everything else, the pipeline file included, builds on it.
package event
