package sinktest

import (
	"context"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// testOpenWindows: a view's rows go through the life of their windows. Open
// rows (final false) land, later open rows overwrite them, then the final
// row does (final true); a tombstone removes its row (a session that merged
// into another), also one that comes in the same batch as the row it
// removes, and one for a row never written changes nothing; a batch
// correction overwrites a final row.
func testOpenWindows(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	rn := e.start(tg)
	_, view := e.tables()
	var all []event.Event
	send := func(rows ...event.Event) map[string]map[string]any {
		t.Helper()
		all = append(all, rows...)
		e.appendViewRows(rows)
		e.waitCommitted(h.Timeout)
		want := h.expected(view, all)
		e.waitExactly(tg, view, want)
		return want
	}
	finals := func(want map[string]map[string]any) (open, final int) {
		for _, r := range want {
			if r[viewrow.ColFinal] == true {
				final++
			} else if r[viewrow.ColFinal] == false {
				open++
			}
		}
		return open, final
	}

	// Windows 0 to 2 open.
	var rows []event.Event
	for w := range 3 {
		for host := range 6 {
			rows = append(rows, flagged(viewRow(w, host, 0), false, false))
		}
	}
	if open, final := finals(send(rows...)); open != 18 || final != 0 {
		t.Fatalf("suite bug: %d open and %d final rows expected, want 18 and 0", open, final)
	}

	// Window 0 changes, then closes; in window 1 the rows of hosts 0 to 2
	// vanish; window 3 shows and vanishes for host 0 within one append;
	// window 9 of host 5 never was.
	rows = rows[:0]
	for host := range 6 {
		rows = append(rows, flagged(viewRow(0, host, 1), false, false))
	}
	for host := range 6 {
		rows = append(rows, flagged(viewRow(0, host, 2), true, false))
	}
	for host := range 3 {
		rows = append(rows, flagged(viewRow(1, host, 0), false, true))
	}
	rows = append(rows, flagged(viewRow(3, 0, 0), false, false), flagged(viewRow(3, 0, 0), false, true),
		flagged(viewRow(9, 5, 0), false, true))
	if open, final := finals(send(rows...)); open != 9 || final != 6 {
		t.Fatalf("suite bug: %d open and %d final rows expected, want 9 and 6", open, final)
	}

	// Batch corrections of window 0 overwrite its final rows; window 2
	// closes.
	rows = rows[:0]
	for host := range 6 {
		rows = append(rows, flagged(viewRow(0, host, 7), true, false), flagged(viewRow(2, host, 1), true, false))
	}
	if open, final := finals(send(rows...)); open != 3 || final != 12 {
		t.Fatalf("suite bug: %d open and %d final rows expected, want 3 and 12", open, final)
	}
	rn.stop(t)
}

// testFinalColumnAdded: a view's table made before the final column
// existed gets the column when the sink starts, as any new nullable field
// does: the rows written before keep null in it, and new rows have it.
func testFinalColumnAdded(t *testing.T, h Harness) {
	e := newEnv(t, h, eventsTopic())
	tg := e.target()
	_, view := e.tables()
	old := view
	old.Columns = view.Columns[:len(view.Columns)-1]
	if view.Columns[len(view.Columns)-1].Name != viewrow.ColFinal || old.Columns.Index(viewrow.ColFinal) >= 0 {
		t.Fatalf("suite bug: the view's table %v does not end with %s", view.Columns, viewrow.ColFinal)
	}
	ctx := context.Background()
	if err := unwrap(tg).Prepare(ctx, old); err != nil {
		t.Fatalf("Prepare the table without %s: %v", viewrow.ColFinal, err)
	}
	before := genViewRows(2, false)
	vals := make([][]event.Value, len(before))
	for i, ev := range before {
		vals[i] = ev.Values[:len(old.Columns)]
	}
	if err := unwrap(tg).Write(ctx, old, Rows(vals...)); err != nil {
		t.Fatalf("Write to the table without %s: %v", viewrow.ColFinal, err)
	}

	var after []event.Event
	for host := range 6 {
		after = append(after, flagged(viewRow(1, host, 1), true, false), flagged(viewRow(2, host, 0), false, false))
	}
	e.appendViewRows(after)
	rn := e.start(tg)
	e.waitCommitted(h.Timeout)
	want := h.expected(view, before)
	for _, r := range want {
		r[viewrow.ColFinal] = nil
	}
	for k, r := range h.expected(view, after) {
		want[k] = r
	}
	e.waitExactly(tg, view, want)
	rn.stop(t)
}
