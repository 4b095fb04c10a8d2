package pipelines

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestDefaultsApplied(t *testing.T) {
	src := strings.Join([]string{
		"version: 1",
		"name: p",
		"topics:",
		"  - name: m",
		"    schema: {ts: timestamp, host: 'string?', n: {type: long, required: false}}",
		"views:",
		"  - name: v",
		"    from: m",
		"    window: {type: tumbling, size: 1m}",
		"    aggregates: {events: count(), p50: 'quantile(n, 0.5)'}",
		"sinks:",
		"  - name: s",
		"    type: duckdb",
		"    from: [m, v]",
	}, "\n")
	got, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Pipeline{
		Version: 1,
		Name:    "p",
		DataDir: "./data",
		HTTP:    HTTP{Listen: "127.0.0.1:8080", ReadHeaderTimeout: Duration(10 * time.Second), ReadTimeout: Duration(time.Minute), WriteTimeout: Duration(time.Minute), IdleTimeout: Duration(2 * time.Minute), MaxConnections: 10000},
		Broker:  Broker{Replicas: 1, Sync: "always", Prefix: "LF", Cluster: Cluster{Name: "lambdaflow"}},
		Ingest: Ingest{
			MaxBodyBytes: 16777216, MaxInFlight: 65536,
			DedupWindow: Duration(10 * time.Minute), DedupMaxIDs: 5000000,
			Linger: Duration(time.Millisecond), MaxBatch: 1000,
		},
		Topics: []Topic{{
			Name: "m", Partitions: 1, Retention: Duration(168 * time.Hour), MaxFuture: Duration(time.Hour),
			Schema: event.Schema{
				{Name: "ts", Type: event.TypeTimestamp, Required: true, Pos: Pos{Line: 5, Col: 14}},
				{Name: "host", Type: event.TypeString, Required: false, Pos: Pos{Line: 5, Col: 29}},
				{Name: "n", Type: event.TypeLong, Required: false, Pos: Pos{Line: 5, Col: 46}},
			},
			Pos: Pos{Line: 4, Col: 5},
		}},
		Views: []View{{
			Name: "v", From: "m",
			Window: Window{Type: "tumbling", Size: Duration(time.Minute)},
			Aggregates: Aggregates{
				{Name: "events", Func: "count", Pos: Pos{Line: 10, Col: 26}},
				{Name: "p50", Func: "quantile", Field: "n", Arg: 0.5, Pos: Pos{Line: 10, Col: 40}},
			},
			Retention: Duration(24 * time.Hour),
			Pos:       Pos{Line: 7, Col: 5},
		}},
		Lake: Lake{
			Roll:    LakeRoll{MaxRows: 1000000, MaxAge: Duration(5 * time.Minute)},
			Compact: Compact{MinFiles: 4, Interval: Duration(10 * time.Minute)},
		},
		Sinks: []Sink{{
			Name: "s", Type: "duckdb", From: []string{"m", "v"},
			Consistency: "local_quorum", Create: true,
			Batch: SinkBatch{MaxRows: 5000, MaxWait: Duration(500 * time.Millisecond), MaxRetries: 10},
			Pos:   Pos{Line: 12, Col: 5},
		}},
		File: "p.yaml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

// TestDefaultsParse checks the `default` tags of every struct of the format,
// including those of list elements, which a small file may not reach.
func TestDefaultsParse(t *testing.T) {
	for _, v := range []any{&Pipeline{}, &Topic{}, &View{}, &Sink{}, &fieldSpec{}} {
		d := &decoder{file: "p.yaml"}
		d.defaults(reflect.ValueOf(v).Elem(), "")
		if len(d.errs) > 0 {
			t.Errorf("%T: %v", v, d.errs)
		}
	}
}

func TestExplicitValuesOverrideDefaults(t *testing.T) {
	src := strings.Join([]string{
		"version: 1",
		"name: ops-metrics",
		"data_dir: /var/lib/lf",
		"http: {listen: ':9090'}",
		"broker: {url: 'nats://a:4222,nats://b:4222', replicas: 3, prefix: OPS, token: t}",
		"ingest: {max_body_bytes: 1_048_576, dedup_window: 1d12h, linger: 0}",
		"topics:",
		"  - name: m",
		"    partitions: 16",
		"    retention: 7d",
		"    max_bytes: 64KiB",
		"    schema: {ts: timestamp}",
		"sinks:",
		"  - {name: s, type: cassandra, hosts: [a, 'b:9042'], keyspace: ks, from: [m], create: false, ttl: 30d}",
	}, "\n")
	p, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"data_dir", p.DataDir, "/var/lib/lf"},
		{"listen", p.HTTP.Listen, ":9090"},
		{"replicas", p.Broker.Replicas, 3},
		{"prefix", p.Broker.Prefix, "OPS"},
		{"sync keeps default", p.Broker.Sync, "always"},
		{"max_body_bytes", p.Ingest.MaxBodyBytes, int64(1 << 20)},
		{"dedup_window", p.Ingest.DedupWindow, Duration(36 * time.Hour)},
		{"linger", p.Ingest.Linger, Duration(0)},
		{"partitions", p.Topics[0].Partitions, 16},
		{"retention", p.Topics[0].Retention, Duration(7 * 24 * time.Hour)},
		{"max_bytes", p.Topics[0].MaxBytes, ByteSize(64 << 10)},
		{"create", p.Sinks[0].Create, false},
		{"ttl", p.Sinks[0].TTL, Duration(30 * 24 * time.Hour)},
		{"hosts", p.Sinks[0].Hosts, []string{"a", "b:9042"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestMergeKeysAndAliases(t *testing.T) {
	src := strings.Join([]string{
		"version: 1",
		"name: p",
		"topics:",
		"  - &metrics",
		"    name: m",
		"    schema: &schema {ts: timestamp, cpu: double}",
		"  - <<: *metrics",
		"    name: m2",
		"    partitions: 2",
		"sinks:",
		"  - &sink {name: a, type: duckdb, from: [m], batch: {max_rows: 10}}",
		"  - <<: [{name: ignored, from: [m2]}, *sink]",
		"    name: b",
	}, "\n")
	p, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Topics[1]; got.Name != "m2" || got.Partitions != 2 || len(got.Schema) != 2 || got.Schema[1].Name != "cpu" {
		t.Errorf("merged topic = %+v", got)
	}
	if got := p.Sinks[1]; got.Name != "b" || got.Type != "duckdb" || !reflect.DeepEqual(got.From, []string{"m2"}) || got.Batch.MaxRows != 10 {
		t.Errorf("merged sink = %+v; want name b (own key), from [m2] (first merged), type and batch from *sink", got)
	}
}

func TestAliasExpansionIsBounded(t *testing.T) {
	// Three aliases of a topic whose schema has 40 fields: about 170 nodes
	// against a budget of 100, which runs out in the third alias, at f6.
	var b strings.Builder
	b.WriteString("version: 1\nname: p\ntopics:\n  - &t\n    name: m\n    schema:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "      f%d: long\n", i)
	}
	b.WriteString("  - *t\n  - *t\n  - *t\n")
	_, err := parse("p.yaml", []byte(b.String()), nil, 100)
	want := "p.yaml:13:11: the file is too complex to decode (too many nodes after expanding aliases)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestPositionsInFlowStyle(t *testing.T) {
	src := strings.Join([]string{
		"version: 1",
		"name: p",
		"topics: [{name: m, schema: {ts: timestamp}}, {name: n, schema: {ts: timestamp}}]",
	}, "\n")
	p, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Topics[1].Pos, (Pos{Line: 3, Col: 46}); got != want {
		t.Errorf("topics[1].Pos = %v, want %v", got, want)
	}
	if got, want := p.Topics[1].Schema[0].Pos, (Pos{Line: 3, Col: 65}); got != want {
		t.Errorf("topics[1].schema.ts Pos = %v, want %v", got, want)
	}
}

func TestOptionalTypeInFlowHint(t *testing.T) {
	_, err := Parse("p.yaml", []byte("version: 1\nname: p\ntopics:\n  - name: m\n    schema: {ts: timestamp, ref: string?}\n"), nil)
	want := `p.yaml:5:1: invalid YAML: did not find expected ',' or '}' (inside { } or [ ], quote optional types: "string?")`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestCallWithCommaInFlowHint(t *testing.T) {
	src := with(fields,
		"views:",
		"  - name: v",
		"    from: m",
		"    window: {type: tumbling, size: 1m}",
		"    aggregates: {p: quantile(cpu, 0.5)}",
	)
	_, err := Parse("p.yaml", []byte(strings.Join(src, "\n")), nil)
	want := strings.Join([]string{
		`p.yaml:16:21: views[0].aggregates.p: invalid aggregate "quantile(cpu": want a call like count(), sum(bytes) or quantile(cpu, 0.95) (inside { }, quote a call that has a comma)`,
		`p.yaml:16:35: views[0].aggregates["0.5)"]: output name must be 1 to 63 lowercase letters, digits or '_', starting with a letter`,
		`p.yaml:16:39: views[0].aggregates["0.5)"]: must be a call like count(), sum(bytes) or quantile(cpu, 0.95), got nothing`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	p, err := Load("testdata/valid.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "testdata/valid.yaml" || p.Name != "valid" {
		t.Errorf("File, Name = %q, %q", p.File, p.Name)
	}
	_, err = Load("testdata/missing.yaml", nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	if want := "load pipeline: open testdata/missing.yaml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: got %v, want %s", err, want)
	}
}

func TestParseAggregate(t *testing.T) {
	for _, c := range []struct {
		in        string
		fn, field string
		q         float64
		msg       string
	}{
		{in: "count()", fn: "count"},
		{in: "  count( ) ", fn: "count"},
		{in: "sum(bytes)", fn: "sum", field: "bytes"},
		{in: "count_distinct(host)", fn: "count_distinct", field: "host"},
		{in: "quantile(cpu, 0.95)", fn: "quantile", field: "cpu", q: 0.95},
		{in: "quantile(cpu,1e-3)", fn: "quantile", field: "cpu", q: 0.001},
		{in: "first(Url)", fn: "first", field: "Url"},
		{in: "count", msg: `invalid aggregate "count": want a call like count(), sum(bytes) or quantile(cpu, 0.95)`},
		{in: "", msg: `invalid aggregate "": want a call like count(), sum(bytes) or quantile(cpu, 0.95)`},
		{in: "(x)", msg: `unknown aggregate function ""; want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "Sum(x)", msg: `unknown aggregate function "Sum" (did you mean "sum"?); want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "median(x)", msg: `unknown aggregate function "median"; want count, sum, min, max, avg, count_distinct, quantile, first or last`},
		{in: "count(*)", msg: `count() takes no arguments; use count_distinct(field) to count distinct values`},
		{in: "max(a.b)", msg: `invalid field name "a.b" in "max(a.b)"`},
		{in: "quantile(cpu, 0.5, 1)", msg: `quantile takes a field and q, e.g. quantile(cpu, 0.95); got 3 arguments`},
	} {
		fn, field, q, msg := parseAggregate(c.in)
		if fn != c.fn || field != c.field || q != c.q || msg != c.msg {
			t.Errorf("parseAggregate(%q) = %q, %q, %v, %q; want %q, %q, %v, %q", c.in, fn, field, q, msg, c.fn, c.field, c.q, c.msg)
		}
	}
}
