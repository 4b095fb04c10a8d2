package pipelines_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks/all"
)

// errCase is a pipeline file, given as lines (line N is src[N-1]), and the
// exact problems Parse must report for it, in order.
type errCase struct {
	name string
	env  map[string]string
	src  []string
	want []string
}

// mapEnv is the environment m holds.
var mapEnv = pipelines.MapEnv

func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Join(c.src, "\n") + "\n"
			p, err := pipelines.Parse("p.yaml", []byte(src), mapEnv(c.env), sinkTypes)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected errors:\n%v", err)
				}
				return
			}
			if p != nil {
				t.Errorf("Parse returned a pipeline along with errors")
			}
			var errs pipelines.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(c.want, "\n\t"))
			}
		})
	}
}

// with returns base followed by more lines.
func with(base []string, more ...string) []string {
	return append(slices.Clip(base), more...)
}

// mini is the smallest valid pipeline; added lines start at line 6.
var mini = []string{
	"version: 1",
	"name: p",
	"topics:",
	"  - name: m",
	"    schema: {ts: timestamp}",
}

// fields is a valid pipeline whose topic m has fields ts, host, cpu and n;
// added lines start at line 12.
var fields = []string{
	"version: 1",
	"name: p",
	"topics:",
	"  - name: m",
	"    key: host",
	"    time: ts",
	"    schema:",
	"      ts: timestamp",
	"      host: string",
	"      cpu: double",
	"      n: long",
}

// view is fields with one valid view v on lines 12-16; lines added to the
// view start at line 17, at its indentation.
var view = with(fields,
	"views:",
	"  - name: v",
	"    from: m",
	"    window: {type: tumbling, size: 1m}",
	"    aggregates: {events: count()}",
)

// agg is fields with a view whose one aggregate, on line 17, is call; the
// call starts at column 10.
func agg(call string) []string {
	return with(fields,
		"views:",
		"  - name: v",
		"    from: m",
		"    window: {type: tumbling, size: 1m}",
		"    aggregates:",
		"      a: "+call,
	)
}

// win is fields with a view whose window, on lines 16 on, is the given
// lines at the window's indentation.
func win(lines ...string) []string {
	src := with(fields,
		"views:",
		"  - name: v",
		"    from: m",
		"    aggregates: {events: count()}",
		"    window:",
	)
	for _, l := range lines {
		src = append(src, "      "+l)
	}
	return src
}

// sink is fields with one sink named s (its mapping at 13:5) whose other
// keys, on lines 14 on, are the given lines.
func sink(lines ...string) []string {
	src := with(fields, "sinks:", "  - name: s")
	for _, l := range lines {
		src = append(src, "    "+l)
	}
	return src
}

func TestValidExamplesOfFeatures(t *testing.T) {
	runErrCases(t, []errCase{
		{name: "mini", src: mini},
		{name: "fields", src: fields},
		{name: "view", src: view},
		{name: "min and max of a timestamp", src: agg("min(ts)")},
		{name: "first of a string", src: agg("last(host)")},
		{name: "count_distinct of a double", src: agg("count_distinct(cpu)")},
		{name: "spaces in a call", src: agg(" quantile( cpu ,0.5 ) ")},
		{name: "hopping", src: win("type: hopping", "size: 1m", "slide: 7s")},
		{name: "session", src: win("type: session", "gap: 30m", "lateness: 0s")},
		{name: "cron descriptors", src: with(view, "    batch: {schedule: '@every 10m'}")},
		{name: "cron hourly", src: with(view, "    batch: {schedule: '@hourly'}")},
		{name: "external broker", src: with(mini, "broker: {url: 'nats://a:4222, tls://b:4222', user: u, password: pw, replicas: 3}")},
		{name: "null keeps default", src: with(mini, "http:", "data_dir: ~")},
		{name: "interpolated number", env: map[string]string{"P": "8"}, src: []string{"version: ${V:1}", "name: p", "topics:", "  - name: m", "    partitions: ${P}", "    schema: {ts: timestamp}"}},
	})
}

func TestDecodeErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{
			name: "unknown key with suggestion",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    partitons: 3", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:5: topics[0].partitons: unknown key (did you mean "partitions"?)`},
		},
		{
			name: "unknown key without suggestion",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    colour: red", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:5: topics[0].colour: unknown key`},
		},
		{
			name: "unknown top-level key",
			src:  with(mini, "viewz: []"),
			want: []string{`p.yaml:6:1: viewz: unknown key (did you mean "views"?)`},
		},
		{
			name: "transposition suggests",
			src:  with(mini, "sinsk: []"),
			want: []string{`p.yaml:6:1: sinsk: unknown key (did you mean "sinks"?)`},
		},
		{
			name: "case suggests",
			src:  with(mini, "Data_Dir: x"),
			want: []string{`p.yaml:6:1: Data_Dir: unknown key (did you mean "data_dir"?)`},
		},
		{
			name: "odd key is quoted in the path",
			src:  with(mini, "http:", "  \"my key\": 1"),
			want: []string{`p.yaml:7:3: http["my key"]: unknown key`},
		},
		{
			name: "duplicate key",
			src:  with(mini, "name: q"),
			want: []string{`p.yaml:6:1: name: duplicate key (first on line 2)`},
		},
		{
			name: "mapping expected",
			src:  with(mini, "http: 8080"),
			want: []string{`p.yaml:6:7: http: must be a mapping, got "8080"`},
		},
		{
			name: "list expected, with hint",
			src:  with(fields, "sinks:", "  - name: s", "    type: duckdb", "    from: m"),
			want: []string{`p.yaml:15:11: sinks[0].from: must be a list, got "m" (write [m] for a list of one)`},
		},
		{
			name: "list of mappings expected",
			src:  []string{"version: 1", "name: p", "topics: {name: m}"},
			want: []string{`p.yaml:3:9: topics: must be a list, got a mapping`},
		},
		{
			name: "scalar expected",
			src:  with(mini, "data_dir: [a]"),
			want: []string{`p.yaml:6:11: data_dir: must be a string, got a list`},
		},
		{
			name: "integer",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    partitions: four", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:17: topics[0].partitions: must be an integer, got "four"`},
		},
		{
			name: "integer, not float",
			src:  []string{"version: 1.0", "name: p", "topics:", "  - name: m", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:1:10: version: must be an integer, got "1.0"`},
		},
		{
			name: "integer overflow",
			src:  with(mini, "ingest: {max_body_bytes: 9223372036854775808}"),
			want: []string{`p.yaml:6:26: ingest.max_body_bytes: must be an integer, got "9223372036854775808"`},
		},
		{
			name: "bool",
			src:  with(fields, "sinks:", "  - name: s", "    type: duckdb", "    from: [m]", "    create: yes"),
			want: []string{`p.yaml:16:13: sinks[0].create: must be true or false, got "yes"`},
		},
		{
			name: "duration",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    retention: 7 days", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:16: topics[0].retention: must be a duration like 90s, 5m, 168h or 7d, got "7 days"`},
		},
		{
			name: "duration without unit",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    retention: 90", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:16: topics[0].retention: must be a duration like 90s, 5m, 168h or 7d, got "90"`},
		},
		{
			name: "size",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    max_bytes: 10 gigs", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:16: topics[0].max_bytes: must be a size like 1024, 64KiB, 10MB or 2GiB, got "10 gigs"`},
		},
		{
			name: "keys must be strings",
			src:  with(mini, "[a, b]: 1"),
			want: []string{`p.yaml:6:1: keys must be strings, got a list`},
		},
		{
			name: "bad root key does not hide other problems",
			src:  with([]string{"[a]: 1"}, mini[1:]...),
			want: []string{
				`p.yaml:1:1: keys must be strings, got a list`,
				`p.yaml:1:1: version: is required`,
			},
		},
		{
			name: "merge of a scalar",
			src:  with(mini, "http:", "  <<: 5"),
			want: []string{`p.yaml:7:7: http["<<"]: must be a mapping or a list of mappings, got "5"`},
		},
	})
}

func TestSchemaErrors(t *testing.T) {
	topic := func(lines ...string) []string {
		src := []string{"version: 1", "name: p", "topics:", "  - name: m", "    schema:", "      ts: timestamp"}
		for _, l := range lines {
			src = append(src, "      "+l)
		}
		return src
	}
	runErrCases(t, []errCase{
		{
			name: "unknown type",
			src:  topic("cpu: dobule"),
			want: []string{`p.yaml:7:12: topics[0].schema.cpu: unknown type "dobule" (did you mean "double"?); want string, long, int, double, bool or timestamp`},
		},
		{
			name: "unknown type, optional",
			src:  topic("cpu: float?"),
			want: []string{`p.yaml:7:12: topics[0].schema.cpu: unknown type "float"; want string, long, int, double, bool or timestamp`},
		},
		{
			name: "no type",
			src:  topic("cpu:"),
			want: []string{`p.yaml:7:11: topics[0].schema.cpu: needs a type; want string, long, int, double, bool or timestamp`},
		},
		{
			name: "list instead of type",
			src:  topic("cpu: [double]"),
			want: []string{`p.yaml:7:12: topics[0].schema.cpu: must be a type or {type: T, required: false}, got a list; want string, long, int, double, bool or timestamp`},
		},
		{
			name: "long form, unknown key",
			src:  topic("cpu: {type: double, requird: false}"),
			want: []string{`p.yaml:7:27: topics[0].schema.cpu.requird: unknown key (did you mean "required"?)`},
		},
		{
			name: "long form, no type",
			src:  topic("cpu: {required: false}"),
			want: []string{`p.yaml:7:12: topics[0].schema.cpu.type: is required`},
		},
		{
			name: "long form, question mark",
			src:  topic("cpu: {type: 'double?'}"),
			want: []string{`p.yaml:7:19: topics[0].schema.cpu.type: write required: false instead of a trailing '?'`},
		},
		{
			name: "long form, unknown type",
			src:  topic("cpu: {type: dbl}"),
			want: []string{`p.yaml:7:19: topics[0].schema.cpu.type: unknown type "dbl"; want string, long, int, double, bool or timestamp`},
		},
		{
			name: "long form, bad required",
			src:  topic("cpu: {type: double, required: maybe}"),
			want: []string{`p.yaml:7:37: topics[0].schema.cpu.required: must be true or false, got "maybe"`},
		},
		{
			name: "schema as list",
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    schema: [ts]"},
			want: []string{`p.yaml:5:13: topics[0].schema: must be a mapping of field name to type, got a list`},
		},
		{
			name: "invalid field name",
			src:  topic("user-id: string"),
			want: []string{`p.yaml:7:7: topics[0].schema.user-id: field name must be 1 to 63 letters, digits or '_', starting with a letter`},
		},
		{
			name: "field name with leading underscore",
			src:  topic("_id: string"),
			want: []string{`p.yaml:7:7: topics[0].schema._id: field name must be 1 to 63 letters, digits or '_', starting with a letter`},
		},
		{
			name: "field names differing in case",
			src:  topic("host: string", "Host: string"),
			want: []string{`p.yaml:8:7: topics[0].schema.Host: same name as "host" apart from case; SQL column names ignore case`},
		},
		{
			name: "duplicate field",
			src:  topic("ts: long"),
			want: []string{`p.yaml:7:7: topics[0].schema.ts: duplicate key (first on line 6)`},
		},
	})
}

func TestAggregateErrors(t *testing.T) {
	at := func(msg string) []string { return []string{"p.yaml:17:10: views[0].aggregates.a: " + msg} }
	runErrCases(t, []errCase{
		{name: "unknown function", src: agg("summ(cpu)"), want: at(`unknown aggregate function "summ" (did you mean "sum"?); want count, sum, min, max, avg, count_distinct, quantile, first or last`)},
		{name: "count with a field", src: agg("count(cpu)"), want: at(`count() takes no arguments; use count_distinct(field) to count distinct values`)},
		{name: "sum without field", src: agg("sum()"), want: at(`sum takes one field, e.g. sum(bytes); got 0 arguments`)},
		{name: "sum of two fields", src: agg("sum(cpu, n)"), want: at(`sum takes one field, e.g. sum(bytes); got 2 arguments`)},
		{name: "quantile without q", src: agg("quantile(cpu)"), want: at(`quantile takes a field and q, e.g. quantile(cpu, 0.95); got 1 argument`)},
		{name: "quantile q not a number", src: agg("quantile(cpu, high)"), want: at(`quantile's q must be a number, got "high"`)},
		{name: "quantile q too big", src: agg("quantile(cpu, 1.5)"), want: at(`quantile's q must be between 0 and 1 (exclusive), got 1.5`)},
		{name: "quantile q zero", src: agg("quantile(cpu, 0)"), want: at(`quantile's q must be between 0 and 1 (exclusive), got 0`)},
		{name: "not a call", src: agg("sum(cpu"), want: at(`invalid aggregate "sum(cpu": want a call like count(), sum(bytes) or quantile(cpu, 0.95)`)},
		{name: "bad field name", src: agg("sum(1x)"), want: at(`invalid field name "1x" in "sum(1x)"`)},
		{name: "unknown field", src: agg("sum(cpus)"), want: at(`unknown field "cpus" in topic "m" (did you mean "cpu"?)`)},
		{name: "sum of a string", src: agg("sum(host)"), want: at(`sum needs a numeric field (long, int or double); "host" is string`)},
		{name: "avg of a timestamp", src: agg("avg(ts)"), want: at(`avg needs a numeric field (long, int or double); "ts" is timestamp`)},
		{name: "quantile of a string", src: agg("quantile(host, 0.5)"), want: at(`quantile needs a numeric field (long, int or double); "host" is string`)},
		{name: "max of a string", src: agg("max(host)"), want: at(`max needs a numeric or timestamp field; "host" is string`)},
		{name: "mapping instead of call", src: agg("{f: x}"), want: at(`must be a call like count(), sum(bytes) or quantile(cpu, 0.95), got a mapping`)},
		{
			name: "aggregates as list",
			src:  with(fields, "views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: [count()]"),
			want: []string{`p.yaml:16:17: views[0].aggregates: must be a mapping of output name to aggregate, e.g. {events: count()}, got a list`},
		},
		{
			name: "output names",
			src: with(fields, "views:", "  - name: v", "    from: m", "    group_by: [host]", "    window: {type: tumbling, size: 1m}", "    aggregates:",
				"      P95: quantile(cpu, 0.95)",
				"      layer: count()",
				"      Host: count()",
			),
			want: []string{
				`p.yaml:18:7: views[0].aggregates.P95: output name must be 1 to 63 lowercase letters, digits or '_', starting with a letter`,
				`p.yaml:19:7: views[0].aggregates.layer: "layer" is a reserved column (window_start, window_end, final, layer)`,
				`p.yaml:20:7: views[0].aggregates.Host: output name must be 1 to 63 lowercase letters, digits or '_', starting with a letter`,
				`p.yaml:20:7: views[0].aggregates.Host: collides with group_by field "host"`,
			},
		},
		{
			name: "duplicate output name",
			src:  with(fields, "views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates:", "      a: count()", "      a: sum(n)"),
			want: []string{`p.yaml:18:7: views[0].aggregates.a: duplicate key (first on line 17)`},
		},
	})
}

func TestInterpolationErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{
			name: "missing variable",
			src:  with(mini, "data_dir: ${DATA}"),
			want: []string{`p.yaml:6:11: data_dir: environment variable DATA is not set (write ${DATA:default} to give a default)`},
		},
		{
			name: "missing variable in a list",
			src:  with(mini, "auth: {read_tokens: [a, '${TOKEN}']}"),
			want: []string{`p.yaml:6:25: auth.read_tokens[1]: environment variable TOKEN is not set (write ${TOKEN:default} to give a default)`},
		},
		{
			name: "invalid name",
			src:  with(mini, "data_dir: ${1X}"),
			want: []string{`p.yaml:6:11: data_dir: invalid variable name "1X" in ${1X}`},
		},
		{
			name: "unterminated",
			src:  with(mini, "data_dir: \"x${DATA\""),
			want: []string{`p.yaml:6:11: data_dir: unterminated "${DATA" (write $${ for a literal ${)`},
		},
		{
			name: "value converted after interpolation",
			env:  map[string]string{"P": "lots"},
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    partitions: ${P}", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:17: topics[0].partitions: must be an integer, got "lots"`},
		},
		{
			name: "value validated after interpolation",
			env:  map[string]string{"P": "0"},
			src:  []string{"version: 1", "name: p", "topics:", "  - name: m", "    partitions: ${P}", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:5:17: topics[0].partitions: must be between 1 and 1024, got 0`},
		},
		{
			name: "empty required value",
			env:  map[string]string{"NAME": ""},
			src:  []string{"version: 1", "name: ${NAME}", "topics:", "  - name: m", "    schema: {ts: timestamp}"},
			want: []string{`p.yaml:2:7: name: must not be empty`},
		},
		{
			name: "in a schema type",
			src:  with(mini[:4], "    schema: {ts: '${TS_TYPE}'}"),
			want: []string{`p.yaml:5:18: topics[0].schema.ts: environment variable TS_TYPE is not set (write ${TS_TYPE:default} to give a default)`},
		},
	})
}

func TestFileErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{name: "empty", src: []string{""}, want: []string{`p.yaml:1:1: empty file: want a pipeline (version: 1, name, topics, ...)`}},
		{name: "only comments", src: []string{"# nothing"}, want: []string{`p.yaml:1:1: empty file: want a pipeline (version: 1, name, topics, ...)`}},
		{name: "a list", src: []string{"- a"}, want: []string{`p.yaml:1:1: a pipeline file must be a mapping (version: 1, name, topics, ...), got a list`}},
		{name: "two documents", src: with(mini, "---", "version: 1"), want: []string{`p.yaml:6:1: a pipeline file holds one YAML document, and a second one starts here`}},
		{name: "syntax error, scanner", src: []string{"version: 1", "name p", "topics: []"}, want: []string{`p.yaml:2:1: invalid YAML: could not find expected ':'`}},
		{name: "syntax error, parser", src: []string{"version: 1", "name: [p", "topics: []"}, want: []string{`p.yaml:2:1: invalid YAML: did not find expected ',' or ']'`}},
		{name: "tab", src: []string{"version: 1", "\tname: p"}, want: []string{`p.yaml:2:1: invalid YAML: found a tab character that violates indentation`}},
		{name: "unknown anchor", src: with(mini, "http: *x"), want: []string{`p.yaml: invalid YAML: unknown anchor 'x' referenced`}},
	})
}

func TestValidationErrors(t *testing.T) {
	runErrCases(t, []errCase{
		// The file as a whole.
		{name: "version missing", src: mini[1:], want: []string{`p.yaml:1:1: version: is required`}},
		{name: "version 2", src: with([]string{"version: 2"}, mini[1:]...), want: []string{`p.yaml:1:10: version: must be 1, got 2`}},
		{name: "version 0", src: with([]string{"version: 0"}, mini[1:]...), want: []string{`p.yaml:1:10: version: must be 1, got 0`}},
		{name: "name missing", src: with(mini[:1], mini[2:]...), want: []string{`p.yaml:1:1: name: is required`}},
		{name: "name empty", src: with(mini[:1], with([]string{`name: ""`}, mini[2:]...)...), want: []string{`p.yaml:2:7: name: must not be empty`}},
		{name: "name invalid", src: with(mini[:1], with([]string{`name: Ops`}, mini[2:]...)...), want: []string{`p.yaml:2:7: name: must be 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter; got "Ops"`}},
		{name: "data_dir empty", src: with(mini, `data_dir: ""`), want: []string{`p.yaml:6:11: data_dir: must not be empty`}},

		// http, broker, ingest, auth.
		{name: "listen without port", src: with(mini, "http:", "  listen: 8080"), want: []string{`p.yaml:7:11: http.listen: must be host:port, e.g. 127.0.0.1:8080; got "8080"`}},
		{name: "listen with named port", src: with(mini, "http:", "  listen: localhost:http"), want: []string{`p.yaml:7:11: http.listen: port must be a number from 0 to 65535; got "http"`}},
		{name: "listen empty", src: with(mini, "http:", "  listen: ''"), want: []string{`p.yaml:7:11: http.listen: must be host:port, e.g. 127.0.0.1:8080; got ""`}},
		{name: "http limits", src: with(mini, "http:", "  read_timeout: 500ms", "  idle_timeout: 0s", "  max_connections: 0", "  write_timeout: 1s"), want: []string{
			`p.yaml:7:17: http.read_timeout: must be at least 1s, got 500ms`,
			`p.yaml:8:17: http.idle_timeout: must be at least 1s, got 0s`,
			`p.yaml:9:20: http.max_connections: must be positive, got 0`,
		}},
		{name: "allowed origins", src: with(mini, "auth:", "  allowed_origins: [https://ok.example.com:8443, ok.example.com, 'https://x.example/path', '']", "  admin_tokens: ['']"), want: []string{
			`p.yaml:7:50: auth.allowed_origins[1]: must be an origin, scheme://host[:port] (e.g. https://dashboards.example.com); got "ok.example.com"`,
			`p.yaml:7:66: auth.allowed_origins[2]: must be an origin, scheme://host[:port] (e.g. https://dashboards.example.com); got "https://x.example/path"`,
			`p.yaml:7:92: auth.allowed_origins[3]: must be an origin, scheme://host[:port] (e.g. https://dashboards.example.com); got ""`,
			`p.yaml:8:18: auth.admin_tokens[0]: must not be empty`,
		}},
		{name: "header timeout past read timeout", src: with(mini, "http:", "  read_timeout: 5s"), want: []string{
			`p.yaml:7:17: http.read_timeout: must be at least http.read_header_timeout (10s), got 5s`,
		}},
		{name: "header timeout past read timeout, both given", src: with(mini, "http:", "  read_timeout: 5s", "  read_header_timeout: 6s"), want: []string{
			`p.yaml:8:24: http.read_header_timeout: must not exceed http.read_timeout (5s), got 6s`,
		}},
		{name: "broker url", src: with(mini, "broker:", "  url: http://x:4222"), want: []string{`p.yaml:7:8: broker.url: invalid server URL "http://x:4222": want nats://host:port (or tls://, ws://, wss://), comma-separated`}},
		{
			name: "broker embedded-only keys with url",
			src:  with(mini, "broker:", "  url: nats://a:4222", "  listen: 127.0.0.1:4222", "  sync: interval"),
			want: []string{
				`p.yaml:8:11: broker.listen: only applies to the embedded server (broker.url is set)`,
				`p.yaml:9:9: broker.sync: only applies to the embedded server (broker.url is set)`,
			},
		},
		{
			name: "broker external-only keys without url",
			src:  with(mini, "broker:", "  user: me", "  tls: {ca: ca.pem}"),
			want: []string{
				`p.yaml:7:3: broker.password: is required with user`,
				`p.yaml:7:9: broker.user: only applies to an external cluster (broker.url is empty)`,
				`p.yaml:8:8: broker.tls: only applies to an external cluster (broker.url is empty)`,
			},
		},
		{
			name: "broker tls pairs",
			src:  with(mini, "broker:", "  url: nats://a:4222", "  password: pw", "  tls: {cert: c.pem}"),
			want: []string{
				`p.yaml:7:3: broker.user: is required with password`,
				`p.yaml:9:8: broker.tls.key: is required with cert`,
			},
		},
		{
			name: "broker cluster",
			src:  with(mini, "broker:", "  cluster:", "    listen: 6222", "    routes: [nats-route://b:6222, 'http://c:6222', nats://d]", "    name: 'lf cluster'", "    node: n.1"),
			want: []string{
				`p.yaml:8:13: broker.cluster.listen: must be host:port, e.g. 127.0.0.1:8080; got "6222"`,
				`p.yaml:9:35: broker.cluster.routes[1]: invalid route "http://c:6222": want nats-route://host:port`,
				`p.yaml:9:52: broker.cluster.routes[2]: invalid route "nats://d": want nats-route://host:port`,
				`p.yaml:10:11: broker.cluster.name: must be 1 to 64 letters, digits, '_' or '-'; got "lf cluster"`,
				`p.yaml:11:11: broker.cluster.node: must be 1 to 64 letters, digits, '_' or '-'; got "n.1"`,
			},
		},
		{name: "broker cluster without routes", src: with(mini, "broker: {cluster: {listen: 0.0.0.0:6222}}"), want: []string{`p.yaml:6:19: broker.cluster.routes: list the other nodes, nats-route://host:port`}},
		{name: "broker cluster routes without listen", src: with(mini, "broker: {cluster: {routes: [nats-route://b:6222]}}"), want: []string{`p.yaml:6:28: broker.cluster.routes: needs broker.cluster.listen`}},
		{name: "broker cluster with url", src: with(mini, "broker: {url: 'nats://a:4222', cluster: {listen: 0.0.0.0:6222, routes: [nats-route://b:6222]}}"), want: []string{`p.yaml:6:41: broker.cluster: only applies to the embedded server (broker.url is set)`}},
		{name: "broker listen", src: with(mini, "broker: {listen: nowhere}"), want: []string{`p.yaml:6:18: broker.listen: must be host:port, e.g. 127.0.0.1:8080; got "nowhere"`}},
		{name: "kafka listen", src: with(mini, "kafka: {listen: nowhere}"), want: []string{`p.yaml:6:17: kafka.listen: must be host:port, e.g. 127.0.0.1:8080; got "nowhere"`}},
		{name: "kafka advertised without listen", src: with(mini, "kafka: {advertised: 'h:9092'}"), want: []string{`p.yaml:6:21: kafka.advertised: has no effect without kafka.listen`}},
		{name: "kafka advertised port 0", src: with(mini, "kafka: {listen: '127.0.0.1:0', advertised: 'h:0'}"), want: []string{`p.yaml:6:44: kafka.advertised: must name a host and a port clients can reach; got "h:0"`}},
		{name: "kafka same as http", src: with(mini, "kafka: {listen: '127.0.0.1:8080'}"), want: []string{`p.yaml:6:17: kafka.listen: is the same address as http.listen`}},
		{
			name: "kafka tls pairs and limits",
			src:  with(mini, "kafka:", "  listen: 127.0.0.1:9092", "  tls: {key: k.pem, client_ca: ca.pem}", "  max_fetch_bytes: 10"),
			want: []string{
				`p.yaml:8:8: kafka.tls.cert: is required with key`,
				`p.yaml:8:8: kafka.tls.cert: is required with client_ca`,
				`p.yaml:9:20: kafka.max_fetch_bytes: must be at least 1024, got 10`,
			},
		},
		{name: "broker prefix", src: with(mini, "broker: {prefix: lf.x}"), want: []string{`p.yaml:6:18: broker.prefix: must be 1 to 32 letters, digits or '_', starting with a letter; got "lf.x"`}},
		{name: "broker prefix empty", src: with(mini, "broker: {prefix: ''}"), want: []string{`p.yaml:6:18: broker.prefix: must not be empty`}},
		{name: "replicas", src: with(mini, "broker: {replicas: 2}"), want: []string{`p.yaml:6:20: broker.replicas: must be one of 1, 3; got 2`}},
		{name: "sync", src: with(mini, "broker: {sync: alwyas}"), want: []string{`p.yaml:6:16: broker.sync: must be one of always, interval; got "alwyas" (did you mean "always"?)`}},
		{name: "lake partitioning monthly", src: with(mini, "    lake: {partitioning: monthly}")},
		{name: "lake partitioning unknown", src: with(mini, "    lake: {partitioning: weekly}"), want: []string{`p.yaml:6:26: topics[0].lake.partitioning: must be one of hourly, daily, monthly; got "weekly"`}},
		{name: "lake retention", src: with(mini, "    lake: {partitioning: daily, retention: 8760h}")},
		{name: "lake retention too short", src: with(mini, "    lake: {retention: 30m}"), want: []string{`p.yaml:6:23: topics[0].lake.retention: must be at least 1h, got 30m`}},
		{name: "lake retention negative", src: with(mini, "    lake: {retention: -1h}"), want: []string{`p.yaml:6:23: topics[0].lake.retention: must be at least 1h, got -1h`}},
		{
			name: "ingest limits",
			src:  with(mini, "ingest:", "  max_body_bytes: 0", "  max_in_flight: -1", "  dedup_window: 0s", "  dedup_max_ids: 0", "  linger: -1ms", "  max_batch: 0"),
			want: []string{
				`p.yaml:7:19: ingest.max_body_bytes: must be positive, got 0`,
				`p.yaml:8:18: ingest.max_in_flight: must be positive, got -1`,
				`p.yaml:9:17: ingest.dedup_window: must be positive, got 0s`,
				`p.yaml:10:18: ingest.dedup_max_ids: must be positive, got 0`,
				`p.yaml:11:11: ingest.linger: must not be negative, got -1ms`,
				`p.yaml:12:14: ingest.max_batch: must be positive, got 0`,
			},
		},
		{name: "read token empty", src: with(mini, "auth: {read_tokens: ['']}"), want: []string{`p.yaml:6:22: auth.read_tokens[0]: must not be empty`}},

		// Topics.
		{name: "topics missing", src: mini[:2], want: []string{`p.yaml:1:1: topics: is required`}},
		{name: "topics empty", src: with(mini[:2], "topics: []"), want: []string{`p.yaml:3:9: topics: must not be empty`}},
		{name: "topic name missing", src: with(mini[:3], "  - schema: {ts: timestamp}"), want: []string{`p.yaml:4:5: topics[0].name: is required`}},
		{name: "topic name invalid", src: with(mini[:3], "  - name: Metrics", mini[4]), want: []string{`p.yaml:4:11: topics[0].name: must be 1 to 63 lowercase letters, digits or '_', starting with a letter; got "Metrics"`}},
		{name: "topic name too long", src: with(mini[:3], "  - name: "+strings.Repeat("a", 64), mini[4]), want: []string{`p.yaml:4:11: topics[0].name: must be 1 to 63 lowercase letters, digits or '_', starting with a letter; got "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..."`}},
		{name: "topic duplicate", src: with(mini, mini[3:]...), want: []string{`p.yaml:6:11: topics[1].name: duplicate topic name "m" (first on line 4)`}},
		{name: "partitions 0", src: with(mini, "    partitions: 0"), want: []string{`p.yaml:6:17: topics[0].partitions: must be between 1 and 1024, got 0`}},
		{name: "partitions 1025", src: with(mini, "    partitions: 1025"), want: []string{`p.yaml:6:17: topics[0].partitions: must be between 1 and 1024, got 1025`}},
		{name: "retention 0", src: with(mini, "    retention: 0"), want: []string{`p.yaml:6:16: topics[0].retention: must be positive, got 0s`}},
		{name: "key unknown", src: with(mini, "    key: tss"), want: []string{`p.yaml:6:10: topics[0].key: unknown field "tss" (did you mean "ts"?)`}},
		{name: "time unknown", src: with(mini, "    time: when"), want: []string{`p.yaml:6:11: topics[0].time: unknown field "when"`}},
		{name: "time unit and max_future", src: with(mini, "    time_unit: sec", "    max_future: 0s"), want: []string{
			`p.yaml:6:16: topics[0].time_unit: must be s, ms or us (or unset: milliseconds, refusing ones before 1973); got "sec"`,
			`p.yaml:7:17: topics[0].max_future: must be at least 1s, got 0s`,
		}},
		{name: "time field long", src: []string{"version: 1", "name: p", "topics:", "  - name: m", "    time: ms", "    schema: {ms: long}"}, want: []string{`p.yaml:5:11: topics[0].time: field "ms" is long; the time field must be a timestamp (it accepts RFC 3339 strings and epoch numbers in time_unit)`}},
		{name: "time of wrong type", src: with(with(fields[:5], "    time: host"), fields[6:]...), want: []string{`p.yaml:6:11: topics[0].time: field "host" is string; the time field must be a timestamp (it accepts RFC 3339 strings and epoch numbers in time_unit)`}},
		{name: "schema missing", src: with(mini[:4]), want: []string{`p.yaml:4:5: topics[0].schema: is required`}},
		{name: "schema empty", src: with(mini[:4], "    schema: {}"), want: []string{`p.yaml:5:13: topics[0].schema: must not be empty`}},
		{name: "write token empty", src: with(mini, "    write_tokens: [a, '']"), want: []string{`p.yaml:6:23: topics[0].write_tokens[1]: must not be empty`}},

		// Views.
		{name: "view named like a topic", src: with(fields, "views:", "  - name: m", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"), want: []string{`p.yaml:13:11: views[0].name: "m" is already a topic name (line 4)`}},
		{name: "view duplicate", src: with(view, view[12:]...), want: []string{`p.yaml:17:11: views[1].name: duplicate view name "v" (first on line 13)`}},
		{name: "view name invalid", src: with(fields, "views:", "  - name: cpu-by-region", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"), want: []string{`p.yaml:13:11: views[0].name: must be 1 to 63 lowercase letters, digits or '_', starting with a letter; got "cpu-by-region"`}},
		{name: "from unknown", src: with(fields, "views:", "  - name: v", "    from: mm", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"), want: []string{`p.yaml:14:11: views[0].from: unknown topic "mm" (did you mean "m"?)`}},
		{name: "from a view", src: with(view, "  - name: w", "    from: v", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"), want: []string{`p.yaml:18:11: views[1].from: "v" is a view; a view reads a topic`}},
		{name: "from missing", src: with(fields, "views:", "  - name: v", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"), want: []string{`p.yaml:13:5: views[0].from: is required`}},
		{name: "where blank", src: with(view, "    where: ' '"), want: []string{`p.yaml:17:12: views[0].where: must not be blank; leave where out to keep every event`}},
		{name: "where type error", src: with(view, "    where: 'host > 3'"), want: []string{`p.yaml:17:12: views[0].where: invalid operation: > (mismatched types string and int) (at 1:6 in the expression)`}},
		{name: "where unknown field", src: with(view, "    where: 'cpux > 1'"), want: []string{`p.yaml:17:12: views[0].where: unknown name cpux (at 1:1 in the expression)`}},
		{name: "where not boolean", src: with(view, "    where: 'cpu'"), want: []string{`p.yaml:17:12: views[0].where: expected bool, but got double (at 1:1 in the expression)`}},
		{
			name: "group_by",
			src:  with(view, "    group_by: [hots, layer, host, host, '']"),
			want: []string{
				`p.yaml:17:16: views[0].group_by[0]: unknown field "hots" in topic "m" (did you mean "host"?)`,
				`p.yaml:17:22: views[0].group_by[1]: "layer" is a reserved column (window_start, window_end, final, layer)`,
				`p.yaml:17:35: views[0].group_by[3]: duplicate field "host"`,
				`p.yaml:17:41: views[0].group_by[4]: must not be empty`,
			},
		},
		{name: "window missing", src: with(fields, "views:", "  - name: v", "    from: m", "    aggregates: {events: count()}"), want: []string{`p.yaml:13:5: views[0].window: is required`}},
		{name: "window type missing", src: win("size: 1m"), want: []string{`p.yaml:17:7: views[0].window.type: is required`}},
		{name: "window type unknown", src: win("type: tumblin", "size: 1m"), want: []string{`p.yaml:17:13: views[0].window.type: must be one of tumbling, hopping, session; got "tumblin" (did you mean "tumbling"?)`}},
		{name: "tumbling without size", src: win("type: tumbling"), want: []string{`p.yaml:17:7: views[0].window.size: is required for tumbling windows`}},
		{name: "size zero", src: win("type: tumbling", "size: 0s"), want: []string{`p.yaml:18:13: views[0].window.size: must be positive, got 0s`}},
		{name: "size negative", src: win("type: tumbling", "size: -1m"), want: []string{`p.yaml:18:13: views[0].window.size: must be positive, got -1m`}},
		{
			name: "tumbling with slide and gap",
			src:  win("type: tumbling", "size: 1m", "slide: 10s", "gap: 5m"),
			want: []string{
				`p.yaml:19:14: views[0].window.slide: tumbling windows have no slide (use type: hopping)`,
				`p.yaml:20:12: views[0].window.gap: tumbling windows have no gap (use type: session)`,
			},
		},
		{name: "hopping without slide", src: win("type: hopping", "size: 1m"), want: []string{`p.yaml:17:7: views[0].window.slide: is required for hopping windows`}},
		{name: "hopping slide over size", src: win("type: hopping", "size: 1m", "slide: 90s"), want: []string{`p.yaml:19:14: views[0].window.slide: must not exceed size (1m), got 1m30s`}},
		{name: "hopping with gap", src: win("type: hopping", "size: 1m", "slide: 10s", "gap: 1s"), want: []string{`p.yaml:20:12: views[0].window.gap: hopping windows have no gap (use type: session)`}},
		{name: "session without gap", src: win("type: session"), want: []string{`p.yaml:17:7: views[0].window.gap: is required for session windows`}},
		{
			name: "session with size and slide",
			src:  win("type: session", "gap: 5m", "size: 1h", "slide: 1m"),
			want: []string{
				`p.yaml:19:13: views[0].window.size: session windows have no size (a gap of inactivity closes them)`,
				`p.yaml:20:14: views[0].window.slide: session windows have no slide (a gap of inactivity closes them)`,
			},
		},
		{name: "lateness negative", src: win("type: tumbling", "size: 1m", "lateness: -1s"), want: []string{`p.yaml:19:17: views[0].window.lateness: must not be negative, got -1s`}},
		{name: "aggregates missing", src: with(fields, "views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}"), want: []string{`p.yaml:13:5: views[0].aggregates: is required`}},
		{name: "aggregates empty", src: with(fields, "views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: {}"), want: []string{`p.yaml:16:17: views[0].aggregates: must not be empty`}},
		{name: "schedule", src: with(view, "    batch: {schedule: '* * *'}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: invalid cron schedule: expected exactly 5 fields, found 3: [* * *]`}},
		{name: "schedule with seconds", src: with(view, "    batch: {schedule: '0 */5 * * * *'}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: invalid cron schedule: expected exactly 5 fields, found 6: [0 */5 * * * *]`}},
		{name: "schedule every zero", src: with(view, "    batch: {schedule: '@every 0s'}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: @every needs an interval of at least 1s, got 0s`}},
		{name: "schedule every sub-second", src: with(view, "    batch: {schedule: '@every 500ms'}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: @every needs an interval of at least 1s, got 500ms`}},
		{name: "schedule every second", src: with(view, "    batch: {schedule: '@every 1s'}")},
		{name: "schedule descriptor", src: with(view, "    batch: {schedule: '@fortnightly'}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: invalid cron schedule: unrecognized descriptor: @fortnightly`}},
		{name: "schedule blank", src: with(view, "    batch: {schedule: '  '}"), want: []string{`p.yaml:17:23: views[0].batch.schedule: must not be blank; leave schedule out to recompute only on request`}},
		{name: "view retention", src: with(view, "    retention: 0s"), want: []string{`p.yaml:17:16: views[0].retention: must be positive, got 0s`}},
		{name: "emit interval too small", src: with(view, "    emit: {interval: 50ms}"), want: []string{`p.yaml:17:22: views[0].emit.interval: must be at least 100ms (or 0: no open windows in the view's topic), got 50ms`}},
		{name: "emit interval negative", src: with(view, "    emit:", "      interval: -1s"), want: []string{`p.yaml:18:17: views[0].emit.interval: must be at least 100ms (or 0: no open windows in the view's topic), got -1s`}},
		{name: "emit interval not a duration", src: with(view, "    emit: {interval: often}"), want: []string{`p.yaml:17:22: views[0].emit.interval: must be a duration like 90s, 5m, 168h or 7d, got "often"`}},
		{name: "emit unknown key", src: with(view, "    emit: {intervall: 1s}"), want: []string{`p.yaml:17:12: views[0].emit.intervall: unknown key (did you mean "interval"?)`}},
		{name: "final reserved", src: with(fields, "views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: {final: count()}"), want: []string{`p.yaml:16:18: views[0].aggregates.final: "final" is a reserved column (window_start, window_end, final, layer)`}},

		// Lake.
		{
			name: "lake",
			src:  with(mini, "lake:", "  roll: {max_rows: 0, max_age: 0s}", "  compact: {min_files: 1, interval: -1m}"),
			want: []string{
				`p.yaml:7:20: lake.roll.max_rows: must be positive, got 0`,
				`p.yaml:7:32: lake.roll.max_age: must be positive, got 0s`,
				`p.yaml:8:24: lake.compact.min_files: must be at least 2, got 1`,
				`p.yaml:8:37: lake.compact.interval: must be positive, got -1m`,
			},
		},

		// Sinks.
		{name: "sink name too long", src: with(fields, "sinks:", "  - name: "+strings.Repeat("s", 60), "    type: duckdb", "    from: [m]"), want: []string{`p.yaml:13:11: sinks[0].name: must be 1 to 59 lowercase letters, digits or '_', starting with a letter; got "sssssssssssssssssssssssssssssssssssss..."`}},
		{name: "sink duplicate", src: with(sink("type: duckdb", "from: [m]"), "  - name: s", "    type: duckdb", "    from: [m]"), want: []string{`p.yaml:16:11: sinks[1].name: duplicate sink name "s" (first on line 13)`}},
		{
			name: "sink dead-letter topic collides",
			src:  with(fields[:4], "    schema: {ts: timestamp}", "  - name: s_dlq", "    schema: {ts: timestamp}", "sinks:", "  - name: s", "    type: duckdb", "    from: [m]"),
			want: []string{`p.yaml:9:11: sinks[0].name: the sink's dead-letter topic "s_dlq" collides with topics[1] (line 6)`},
		},
		{name: "sink type missing", src: sink("from: [m]"), want: []string{`p.yaml:13:5: sinks[0].type: is required`}},
		{name: "sink type unknown", src: sink("type: postgress", "from: [m]"), want: []string{`p.yaml:14:11: sinks[0].type: must be one of postgres, duckdb, cassandra, elasticsearch; got "postgress" (did you mean "postgres"?)`}},
		{name: "sink from missing", src: sink("type: duckdb"), want: []string{`p.yaml:13:5: sinks[0].from: is required`}},
		{name: "sink from empty", src: sink("type: duckdb", "from: []"), want: []string{`p.yaml:15:11: sinks[0].from: must not be empty`}},
		{
			name: "sink from",
			src:  with(view, "sinks:", "  - name: s", "    type: duckdb", "    from: [vv, m, m, '']"),
			want: []string{
				`p.yaml:20:12: sinks[0].from[0]: unknown topic or view "vv" (did you mean "v"?)`,
				`p.yaml:20:19: sinks[0].from[2]: duplicate "m"`,
				`p.yaml:20:22: sinks[0].from[3]: must not be empty`,
			},
		},
		{name: "postgres without dsn", src: sink("type: postgres", "from: [m]"), want: []string{`p.yaml:13:5: sinks[0].dsn: is required for postgres sinks`}},
		{
			name: "cassandra without hosts and keyspace",
			src:  sink("type: cassandra", "from: [m]"),
			want: []string{
				`p.yaml:13:5: sinks[0].hosts: is required for cassandra sinks`,
				`p.yaml:13:5: sinks[0].keyspace: is required for cassandra sinks`,
			},
		},
		{
			name: "cassandra values",
			src:  sink("type: cassandra", "from: [m]", "hosts: [a, 'b:x', '']", "keyspace: Ops", "consistency: quorm", "ttl: -1h"),
			want: []string{
				`p.yaml:16:16: sinks[0].hosts[1]: port must be a number from 0 to 65535; got "x"`,
				`p.yaml:16:23: sinks[0].hosts[2]: must not be empty`,
				`p.yaml:17:15: sinks[0].keyspace: must be 1 to 48 lowercase letters, digits or '_', starting with a letter; got "Ops"`,
				`p.yaml:18:18: sinks[0].consistency: must be one of any, one, two, three, quorum, all, local_quorum, each_quorum, local_one; got "quorm" (did you mean "quorum"?)`,
				`p.yaml:19:10: sinks[0].ttl: must not be negative, got -1h`,
			},
		},
		{name: "elasticsearch without urls", src: sink("type: elasticsearch", "from: [m]"), want: []string{`p.yaml:13:5: sinks[0].urls: is required for elasticsearch sinks`}},
		{
			name: "elasticsearch values",
			src:  sink("type: elasticsearch", "from: [m]", "urls: ['ftp://x', 'http://']", "username: elastic", "index: ''"),
			want: []string{
				`p.yaml:13:5: sinks[0].password: is required with username`,
				`p.yaml:16:12: sinks[0].urls[0]: must be an http:// or https:// URL, got "ftp://x"`,
				`p.yaml:16:23: sinks[0].urls[1]: must be an http:// or https:// URL, got "http://"`,
				`p.yaml:18:12: sinks[0].index: must not be empty`,
			},
		},
		{
			name: "keys of other sink types",
			src:  sink("type: duckdb", "from: [m]", "dsn: x", "consistency: one", "urls: [http://x]"),
			want: []string{
				`p.yaml:16:10: sinks[0].dsn: only applies to postgres sinks`,
				`p.yaml:17:18: sinks[0].consistency: only applies to cassandra sinks`,
				`p.yaml:18:11: sinks[0].urls: only applies to elasticsearch sinks`,
			},
		},
		{
			name: "sink batch",
			src:  sink("type: duckdb", "from: [m]", "batch: {max_rows: 0, max_wait: -1s, max_retries: -1}"),
			want: []string{
				`p.yaml:16:23: sinks[0].batch.max_rows: must be positive, got 0`,
				`p.yaml:16:36: sinks[0].batch.max_wait: must not be negative, got -1s`,
				`p.yaml:16:54: sinks[0].batch.max_retries: must be at least 0, got -1`,
			},
		},
	})
}

// TestAllErrorsReported checks that one file's problems, from decoding and
// from validation, all come back at once and in file order.
func TestAllErrorsReported(t *testing.T) {
	_, err := pipelines.Load("testdata/invalid.yaml", mapEnv(nil), sinkTypes)
	want := strings.Join([]string{
		`testdata/invalid.yaml:3:10: version: must be 1, got 2`,
		`testdata/invalid.yaml:4:7: name: must be 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter; got "My Pipeline"`,
		`testdata/invalid.yaml:5:11: data_dir: environment variable DATA is not set (write ${DATA:default} to give a default)`,
		`testdata/invalid.yaml:8:5: topics[0].partitons: unknown key (did you mean "partitions"?)`,
		`testdata/invalid.yaml:9:10: topics[0].key: unknown field "hots" (did you mean "host"?)`,
		`testdata/invalid.yaml:12:12: topics[0].schema.cpu: unknown type "dobule" (did you mean "double"?); want string, long, int, double, bool or timestamp`,
		`testdata/invalid.yaml:15:11: topics[1].name: duplicate topic name "metrics" (first on line 7)`,
		`testdata/invalid.yaml:16:17: topics[1].partitions: must be between 1 and 1024, got 0`,
		`testdata/invalid.yaml:19:5: views[0].aggregates: is required`,
		`testdata/invalid.yaml:20:11: views[0].from: unknown topic "metrix" (did you mean "metrics"?)`,
		`testdata/invalid.yaml:21:20: views[0].window.type: must be one of tumbling, hopping, session; got "hopin" (did you mean "hopping"?)`,
		`testdata/invalid.yaml:22:5: views[1].name: is required`,
		`testdata/invalid.yaml:23:16: views[1].group_by[0]: unknown field "regon" in topic "metrics" (did you mean "region"?)`,
		`testdata/invalid.yaml:24:13: views[1].window: must be a mapping, got "1m"`,
		`testdata/invalid.yaml:26:16: views[1].aggregates.avg_cpu: avg needs a numeric field (long, int or double); "host" is string`,
		`testdata/invalid.yaml:27:16: views[1].aggregates.p99_cpu: quantile's q must be between 0 and 1 (exclusive), got 99`,
		`testdata/invalid.yaml:29:5: sinks[0].dsn: is required for postgres sinks`,
		`testdata/invalid.yaml:29:46: sinks[0].from[0]: unknown topic or view "cpu_by_region"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// sinkTypes are the program's sink types: the files here are checked as
// lambdaflow checks them.
var sinkTypes = all.Types()
