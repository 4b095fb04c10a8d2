// Package pipetest runs pipeline tests: YAML files of cases that feed
// events to a pipeline's views and check the rows they show, with a clock
// and a watermark the test moves (`lambdaflow test FILE…`). Like the config
// tests of Redpanda Connect or Vector, but stateful: a case is a sequence of
// steps, and every expectation sees what the steps before it did.
//
// A case runs the speed layer in process (speed.Local: the same engine,
// watermark and emission code as a running pipeline, without a log) into a
// serving store, and an expectation compares the rows a query of the view
// would return at that point. Nothing is started, no broker, no files.
//
// # File format
//
//	pipeline: quickstart.yaml          # the pipeline file, relative to this file
//	start: 2026-01-02T15:00:00Z        # the clock at the start of each case (default 2026-01-01T00:00:00Z)
//	idle: 5s                           # the idle time of the watermark rule (default 5s)
//	cases:
//	  - name: one minute of one region
//	    steps:
//	      - events:                    # one log entry of the topic
//	          - { ts: 2026-01-02T15:00:10Z, host: web-1, region: eu, cpu: 0.5, bytes: 100 }
//	          - { ts: 2026-01-02T15:00:20Z, host: web-2, region: eu, cpu: 0.7, bytes: 200 }
//	        topic: metrics             # optional when the pipeline has one topic
//	        partition: 0               # optional: by the topic's key, as ingest places events
//	      - advance: 10s               # move the clock: partitions without events for `idle` stop holding the watermark back
//	      - watermark: 2026-01-02T15:01:30Z   # move every view's watermark: windows ending at or before it are final
//	      - expect:
//	          view: cpu_by_region
//	          late: 0                  # optional: late events of the view so far
//	          rows:                    # optional: every row of the view, in order
//	            - { window_start: 2026-01-02T15:00:00Z, region: eu, events: 2, bytes: 300, final: true }
//
// Each step has exactly one of events, advance, watermark and expect.
//
// Events are mappings of the topic's fields. Timestamps are RFC 3339 (or
// epoch milliseconds); a missing or null optional field is null. The event
// time is the topic's time field, or the clock for topics without one. An
// event may carry `_id` (default "<case>/<step>/<n>"), which orders first
// and last between events of equal time.
//
// An expected row lists the columns it checks: window_start, window_end,
// group-by fields, aggregates, and `final` (whether the window is closed);
// columns it leaves out are not checked. The rows of a view are all of them
// at that point, open windows included, ordered by window_start and then by
// the group-by values; expected rows that give window_start and every
// group-by field may be written in any order. Doubles match within 1e-9
// (relative); `{approx: 0.95, within: 1%}` matches within a tolerance of
// its own (for quantiles and count_distinct, which are sketches). null
// matches a null value.
//
// A failure names the file, the case, the step (with its line), the row and
// the column, with what was wanted and what the view had.
package pipetest
