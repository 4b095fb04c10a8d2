package pipelines_test

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks/cassandra"
	"github.com/lambdaflow/lambdaflow/sinks/warehouse"
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
	got, err := pipelines.Parse("p.yaml", []byte(src), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	want := &pipelines.Pipeline{
		Version:         1,
		Name:            "p",
		DataDir:         "./data",
		ShutdownTimeout: pipelines.Duration(10 * time.Second),
		HTTP:            pipelines.HTTP{Listen: "127.0.0.1:8080", ReadHeaderTimeout: pipelines.Duration(10 * time.Second), ReadTimeout: pipelines.Duration(time.Minute), WriteTimeout: pipelines.Duration(time.Minute), IdleTimeout: pipelines.Duration(2 * time.Minute), MaxConnections: 10000},
		Broker:          pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF", Cluster: pipelines.Cluster{Name: "lambdaflow"}},
		Ingest: pipelines.Ingest{
			MaxBodyBytes: 16777216, MaxInFlight: 65536,
			DedupWindow: pipelines.Duration(10 * time.Minute), DedupMaxIDs: 5000000,
			Linger: pipelines.Duration(time.Millisecond), MaxBatch: 1000,
		},
		Kafka: pipelines.Kafka{MaxRequestBytes: 16 << 20, MaxFetchBytes: 8 << 20, MaxConnections: 1024},
		Topics: []pipelines.Topic{{
			Name: "m", Partitions: 1, Retention: pipelines.Duration(168 * time.Hour), MaxFuture: pipelines.Duration(time.Hour),
			Schema: event.Schema{
				{Name: "ts", Type: event.TypeTimestamp, Required: true, Pos: pipelines.Pos{Line: 5, Col: 14}},
				{Name: "host", Type: event.TypeString, Required: false, Pos: pipelines.Pos{Line: 5, Col: 29}},
				{Name: "n", Type: event.TypeLong, Required: false, Pos: pipelines.Pos{Line: 5, Col: 46}},
			},
			Lake: pipelines.TopicLake{Partitioning: pipelines.LakeHourly},
			Pos:  pipelines.Pos{Line: 4, Col: 5},
		}},
		Views: []pipelines.View{{
			Name: "v", From: "m",
			Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
			Aggregates: pipelines.Aggregates{
				{Name: "events", Func: "count", Pos: pipelines.Pos{Line: 10, Col: 26}},
				{Name: "p50", Func: "quantile", Field: "n", Arg: 0.5, Pos: pipelines.Pos{Line: 10, Col: 40}},
			},
			Emit:      pipelines.ViewEmit{Interval: pipelines.Duration(time.Second)},
			Retention: pipelines.Duration(24 * time.Hour),
			Pos:       pipelines.Pos{Line: 7, Col: 5},
		}},
		Lake: pipelines.Lake{
			Region: "us-east-1", Cache: 64 << 20, Buffer: 128 << 20,
			Roll:    pipelines.LakeRoll{MaxRows: 1000000, MaxAge: pipelines.Duration(5 * time.Minute)},
			Compact: pipelines.Compact{MinFiles: 4, Interval: pipelines.Duration(10 * time.Minute)},
		},
		Sinks: []pipelines.Sink{{
			Name: "s", Type: "duckdb", From: []string{"m", "v"},
			Config: &warehouse.DuckDBConfig{}, Create: true,
			Batch: pipelines.SinkBatch{MaxRows: 5000, MaxWait: pipelines.Duration(500 * time.Millisecond), MaxRetries: 10},
			Pos:   pipelines.Pos{Line: 12, Col: 5},
		}},
		SQL:  pipelines.SQL{Timeout: pipelines.Duration(30 * time.Second), MaxRows: 10000, MaxBytes: 16 << 20, MemoryLimit: 1 << 30, LakeCache: 4 << 30},
		File: "p.yaml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
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
	p, err := pipelines.Parse("p.yaml", []byte(src), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	cass := p.Sinks[0].Config.(*cassandra.Config)
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
		{"dedup_window", p.Ingest.DedupWindow, pipelines.Duration(36 * time.Hour)},
		{"linger", p.Ingest.Linger, pipelines.Duration(0)},
		{"partitions", p.Topics[0].Partitions, 16},
		{"retention", p.Topics[0].Retention, pipelines.Duration(7 * 24 * time.Hour)},
		{"max_bytes", p.Topics[0].MaxBytes, pipelines.ByteSize(64 << 10)},
		{"create", p.Sinks[0].Create, false},
		{"ttl", cass.TTL, pipelines.Duration(30 * 24 * time.Hour)},
		{"hosts", cass.Hosts, []string{"a", "b:9042"}},
		{"consistency keeps default", cass.Consistency, "local_quorum"},
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
	p, err := pipelines.Parse("p.yaml", []byte(src), nil, sinkTypes)
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

func TestPositionsInFlowStyle(t *testing.T) {
	src := strings.Join([]string{
		"version: 1",
		"name: p",
		"topics: [{name: m, schema: {ts: timestamp}}, {name: n, schema: {ts: timestamp}}]",
	}, "\n")
	p, err := pipelines.Parse("p.yaml", []byte(src), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Topics[1].Pos, (pipelines.Pos{Line: 3, Col: 46}); got != want {
		t.Errorf("topics[1].Pos = %v, want %v", got, want)
	}
	if got, want := p.Topics[1].Schema[0].Pos, (pipelines.Pos{Line: 3, Col: 65}); got != want {
		t.Errorf("topics[1].schema.ts Pos = %v, want %v", got, want)
	}
}

func TestOptionalTypeInFlowHint(t *testing.T) {
	_, err := pipelines.Parse("p.yaml", []byte("version: 1\nname: p\ntopics:\n  - name: m\n    schema: {ts: timestamp, ref: string?}\n"), nil, sinkTypes)
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
	_, err := pipelines.Parse("p.yaml", []byte(strings.Join(src, "\n")), nil, sinkTypes)
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
	p, err := pipelines.Load("testdata/valid.yaml", nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if p.File != "testdata/valid.yaml" || p.Name != "valid" {
		t.Errorf("File, Name = %q, %q", p.File, p.Name)
	}
	_, err = pipelines.Load("testdata/missing.yaml", nil, sinkTypes)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	if want := "load pipeline: open testdata/missing.yaml: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: got %v, want %s", err, want)
	}
}

// TestViewEmit: emit.interval defaults to 1s; 0 keeps open windows out of
// the view's topic and still refreshes them in queries every 1s.
func TestViewEmit(t *testing.T) {
	for _, c := range []struct {
		emit    string
		every   time.Duration
		toTopic bool
	}{
		{"", time.Second, true},
		{"    emit: {interval: 250ms}", 250 * time.Millisecond, true},
		{"    emit: {interval: 0}", time.Second, false},
	} {
		src := []string{"version: 1", "name: p", "topics:", "  - name: m", "    schema: {ts: timestamp}",
			"views:", "  - name: v", "    from: m", "    window: {type: tumbling, size: 1m}", "    aggregates: {events: count()}"}
		if c.emit != "" {
			src = append(src, c.emit)
		}
		p, err := pipelines.Parse("p.yaml", []byte(strings.Join(src, "\n")), nil, sinkTypes)
		if err != nil {
			t.Fatalf("%q: %v", c.emit, err)
		}
		every, toTopic := p.Views[0].Emit.Open()
		if every != c.every || toTopic != c.toTopic {
			t.Errorf("%q: Open() = %v, %v; want %v, %v", c.emit, every, toTopic, c.every, c.toTopic)
		}
	}
}

// TestDefaultConstants: the defaults code falls back on are the loader's.
func TestDefaultConstants(t *testing.T) {
	got, err := pipelines.Parse("p.yaml", []byte("version: 1\nname: p\ntopics:\n  - {name: m, schema: {ts: timestamp}}\n"), nil, sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	// A view topic of no known topic falls back on the default retention.
	viewTopic := (&pipelines.Pipeline{}).ViewTopic(&pipelines.View{Name: "v"})
	if got.Broker.Prefix != pipelines.DefaultPrefix || got.Topics[0].Retention != viewTopic.Retention {
		t.Errorf("loader defaults prefix %q, retention %v; fallbacks %q, %v", got.Broker.Prefix, got.Topics[0].Retention.D(), pipelines.DefaultPrefix, viewTopic.Retention.D())
	}
}
