// Package pipelines owns the pipeline file: its format (version 1), loading,
// ${VAR} interpolation, validation and the JSON Schema for editors, durations
// and sizes, and the lookups every layer makes in a loaded pipeline (a topic
// or view by name, the log topics of views and dead letters).
//
// Its neighbours own the rest of what a pipeline means:
//   - event: field types, schemas, values, events, partitioning, value JSON
//     and text;
//   - expr: the where expression (this package type-checks it with
//     expr.CheckWhere);
//   - aggregate: the aggregate functions, whose registry this package reads
//     to parse, validate and document calls, and their states;
//   - plan: views compiled into plans (windows, group keys, the view's
//     aggregates) that the speed and the batch layer both run.
//
// The dependency order is event ← expr, aggregate ← pipelines ← plan ← the
// layers.
//
// Sinks are declared by their types: the keys every sink has are Sink's
// fields, and each type's own keys come from the SinkType the program
// passes to Load, Parse and JSONSchema (sinks/all builds that table), so
// this package knows no sink type.
//
// One set of Go structs (spec.go) is the single description of the format:
// their tags drive decoding (`yaml`, `default`), validation (`required`,
// `enum`) and JSONSchema (`doc` as descriptions). Load is strict: defaults
// first, then the file, where an unknown key is an error with a "did you
// mean" hint, then validation of every field and cross-reference. Every
// problem of a file is reported at once, each as
//
//	file:line:col: yaml.path: message
//
// for example
//
//	p.yaml:12:11: views[0].window.size: must be positive, got 0s
//	p.yaml:3:3: topics[0].partitons: unknown key (did you mean "partitions"?)
//
// Some rules that are not obvious from the structs:
//   - Topic, view, sink and aggregate names are 1 to 63 lowercase letters,
//     digits or '_', starting with a letter, because they become stream, file,
//     table and index names; a view or sink may not take a topic's name.
//   - Field names are letters, digits and '_' starting with a letter; a
//     leading '_' is kept for the columns Lambdaflow adds (_id, _offset,
//     _deleted, ...), and window_start, window_end, final and layer are kept
//     for view rows.
//   - A view's emit.interval is 0 (no open windows in its topic) or at
//     least 100ms (ViewEmit.Open).
//   - A hopping window needs 0 < slide <= size; size need not be a multiple
//     of slide.
//   - Durations are Go durations plus whole days ("7d", "1d12h").
//
// This package imports only event, expr and aggregate of Lambdaflow, never a runtime
// package (broker, ingest, speed, batch, serving, sinks). It does no I/O
// beyond reading the file it is asked to load and keeps no global state.
package pipelines
