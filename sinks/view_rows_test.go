package sinks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// recorder is a target that keeps every row written, in order.
type recorder struct {
	mu   sync.Mutex
	rows []sinks.Row
}

func (r *recorder) Prepare(context.Context, sinks.Table) error { return nil }
func (r *recorder) Ping(context.Context) error                 { return nil }
func (r *recorder) Close() error                               { return nil }

func (r *recorder) Write(_ context.Context, _ sinks.Table, rows []sinks.Row) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		row.Values = append([]event.Value(nil), row.Values...)
		r.rows = append(r.rows, row)
	}
	return nil
}

// TestViewRowsFinalAndDelete: the runner hands a view's targets the final
// column and tombstones as deletes; rows appended to the view's topic
// before final and _deleted existed (an older version's) are final.
func TestViewRowsFinalAndDelete(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 100, MaxWait: pipelines.Duration(10 * time.Millisecond), MaxRetries: 1})
	p.Views = []pipelines.View{{Name: "v", From: "t", GroupBy: []string{"s"},
		Window:     pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
		Aggregates: pipelines.Aggregates{{Name: "events", Func: "count"}}, Retention: pipelines.Duration(time.Hour)}}
	p.Sinks[0].From = []string{"v"}
	v := &p.Views[0]
	values := pipelines.ViewSchema(v, &p.Topics[0])
	row := func(start int64, group string, events int64) viewrow.Row {
		return viewrow.Row{Start: start, End: start + 60e6, Group: []event.Value{{S: group, Valid: true}},
			Aggs: []event.Value{{I: events, Valid: true}}}
	}

	// An older version's view topic: the values only.
	old := *p
	old.Views = nil
	old.Topics = append(old.Topics, p.ViewTopic(v))
	old.Topics[1].Schema = values
	b := openBroker(t, &old)
	r0 := row(0, "a", 3)
	ev := r0.Event("old")
	ev.Values = ev.Values[:len(values)]
	appendEvents(t, b, "v", 0, []event.Event{ev})
	b.Close()

	b = openBroker(t, p)
	open, final, gone := row(60e6, "a", 1), row(60e6, "a", 2), row(60e6, "b", 0)
	final.Final, gone.Deleted = true, true
	gone.Aggs = []event.Value{{}}
	var evs []event.Event
	for i, r := range []viewrow.Row{open, final, gone} {
		evs = append(evs, r.Event(fmt.Sprint(i)))
	}
	appendEvents(t, b, "v", 0, evs)

	rec := &recorder{}
	r, err := sinks.NewRunner(p, &p.Sinks[0], rec, b, sinks.Options{Owner: sinktest.Join(t, b)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitCommitted(t, b, "v", 0, 4)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	text := func(v event.Value) string {
		if !v.Valid {
			return "null"
		}
		return fmt.Sprint(v.I)
	}
	var got []string
	for _, w := range rec.rows {
		got = append(got, fmt.Sprintf("%d %s events=%s final=%s delete=%t",
			w.Values[0].I/60e6, w.Values[2].S, text(w.Values[3]), text(w.Values[4]), w.Delete))
	}
	want := []string{
		"0 a events=3 final=1 delete=false",
		"1 a events=1 final=0 delete=false",
		"1 a events=2 final=1 delete=false",
		"1 b events=null final=0 delete=true",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows written:\n%q\nwant\n%q", got, want)
	}
	if n := len(sinks.ViewTable(v, &p.Topics[0]).Columns); n != len(values)+1 {
		t.Errorf("the view's table has %d columns, want %d (its values and final)", n, len(values)+1)
	}
}
