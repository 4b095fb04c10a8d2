package batch

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/serving"
)

// TestSchemaEvolution: after a nullable field is added to a topic, old and
// new lake files read together; the old files' rows have it null.
func TestSchemaEvolution(t *testing.T) {
	dir := t.TempDir()
	clk := fakeclock.New(t0.Add(3 * time.Hour))
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 1)}, []pipelines.View{testView("cpu_by_region", "metrics")})
	old := []event.Event{testEvent("old", 0, t0, time.Second), testEvent("old", 1, t0, time.Second)}
	{
		br := openBroker(t, p, clk.Now)
		b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Poll: 5 * time.Millisecond, Owner: join(t, br)})
		if err != nil {
			t.Fatal(err)
		}
		stop := startBatch(t, b)
		appendEvents(t, br, "metrics", 1, old)
		waitLake(t, b, clk, "metrics", logEnds(t, br, "metrics"))
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		br.Close()
	}

	// Version 2 of the topic: a new optional field, in the middle.
	p2 := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 1)}, []pipelines.View{testView("cpu_by_region", "metrics")})
	s := p2.Topics[0].Schema
	p2.Topics[0].Schema = append(append(append(event.Schema{}, s[:2]...), event.Field{Name: "zone", Type: event.TypeString}), s[2:]...)
	br := openBroker(t, p2, clk.Now)
	store := serving.NewStore(p2)
	b, err := New(p2, br, store, Options{Logger: testLogger(t), Now: clk.Now, Poll: 5 * time.Millisecond, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	var fresh []event.Event
	for i := range 2 {
		ev := testEvent("new", i, t0.Add(time.Minute), time.Second)
		ev.Values = append(append(append([]event.Value{}, ev.Values[:2]...), event.Value{S: "z1", Valid: true}), ev.Values[2:]...)
		fresh = append(fresh, ev)
	}
	appendEvents(t, br, "metrics", 1, fresh)
	waitLake(t, b, clk, "metrics", logEnds(t, br, "metrics"))
	// A job reads both generations.
	e := &env{t: t, p: p2, clk: clk, br: br, store: store, b: b}
	if st := e.run("cpu_by_region", time.Time{}, time.Time{}); st.Rows != 4 {
		t.Fatalf("job read %d rows, want 4", st.Rows)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, b, "metrics")
	if len(got) != 4 {
		t.Fatalf("%d events, want 4", len(got))
	}
	for id, ev := range got {
		zone := ev.Values[2]
		if strings.HasPrefix(id, "old") == zone.Valid || (zone.Valid && zone.S != "z1") {
			t.Errorf("event %s: zone %+v", id, zone)
		}
		if ev.Values[3].S == "" || !ev.Values[0].Valid {
			t.Errorf("event %s: values shifted: %+v", id, ev.Values)
		}
	}
	// DuckDB, told to unify the files' schemas by name, agrees.
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import duckdb").Run() == nil {
		var out bytes.Buffer
		cmd := exec.Command(py, "-c", `
import sys, duckdb
print(*duckdb.connect().execute("select count(*), count(zone) from read_parquet(?, union_by_name=true)", [sys.argv[1] + "/**/*.parquet"]).fetchone())
`, lakeAt{}.topic(p2, "metrics"))
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out.String()) != "4 2" {
			t.Fatalf("duckdb: rows and non-null zones %q, want 4 2", out.String())
		}
	}
}
