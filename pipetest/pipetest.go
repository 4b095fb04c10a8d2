package pipetest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/serving"
	"github.com/lambdaflow/lambdaflow/speed"
)

// maxMismatches bounds the mismatches reported for one step.
const maxMismatches = 10

// Run runs the pipeline test files and writes a report to w: for each
// failing case what failed, then a line per file. It returns the number of
// failed cases. err is for a file that cannot be run at all (unreadable, not
// a test file, a pipeline that does not load: a *FormatError names the line)
// and stops the run; so does ctx ending. sinks are the sink types the
// pipelines may use (see pipelines.Load); the tests never open a sink.
func Run(ctx context.Context, files []string, sinks pipelines.SinkTypes, w io.Writer) (failed int, err error) {
	for _, path := range files {
		tf, err := load(path, sinks)
		if err != nil {
			return failed, err
		}
		n := 0
		for _, tc := range tf.cases {
			if err := ctx.Err(); err != nil {
				return failed, err
			}
			where, problems, err := runCase(ctx, tf, tc)
			if err != nil {
				return failed, err
			}
			if len(problems) > 0 {
				n++
				fmt.Fprintf(w, "--- FAIL: %s: case %q (line %d)\n    %s:\n", path, tc.name, tc.line, where)
				for _, p := range problems {
					fmt.Fprintf(w, "        %s\n", strings.ReplaceAll(p, "\n", "\n        "))
				}
			}
		}
		if n > 0 {
			fmt.Fprintf(w, "FAIL %s: %d of %d cases failed\n", path, n, len(tf.cases))
		} else {
			fmt.Fprintf(w, "ok   %s: %d cases\n", path, len(tf.cases))
		}
		failed += n
	}
	return failed, nil
}

// runCase runs one case on a fresh speed layer and serving store. It stops
// at the first step that fails and returns that step and what failed.
func runCase(ctx context.Context, tf *testFile, tc *testCase) (where string, problems []string, err error) {
	store := serving.NewStore(tf.pipeline)
	local, err := speed.NewLocal(tf.pipeline, store, tf.start, tf.idle)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", tf.path, err)
	}
	for i, st := range tc.steps {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		switch st.kind {
		case stepEvents:
			if err := appendEvents(local, st); err != nil {
				return fmt.Sprintf("step %d, events (line %d)", i+1, st.line), []string{err.Error()}, nil
			}
		case stepAdvance:
			local.Advance(st.advance)
		case stepWatermark:
			local.AdvanceWatermark(st.watermark)
		case stepExpect:
			if problems := check(store, local, st.expect); len(problems) > 0 {
				return fmt.Sprintf("step %d, expect %s (line %d)", i+1, st.expect.view.Name, st.line), problems, nil
			}
		}
	}
	return "", nil, nil
}

// appendEvents appends a step's events: one entry per partition, in order.
func appendEvents(local *speed.Local, st *step) error {
	now := local.Now().UnixMicro()
	t := st.topic
	parts := max(t.Partitions, 1)
	byPart := make([][]event.Event, parts)
	keyField, keyType := t.Schema.Index(t.Key), event.FieldType(0)
	if keyField >= 0 {
		keyType = t.Schema[keyField].Type
	}
	for _, es := range st.events {
		e := event.Event{ID: es.id, Time: now, Ingest: now, Values: slices.Clone(es.values)}
		if es.hasTime {
			e.Time = es.time
		}
		p := st.partition
		if p < 0 {
			p = event.EventPartition(&e, keyField, keyType, parts)
		}
		byPart[p] = append(byPart[p], e)
	}
	for p, evs := range byPart {
		if len(evs) > 0 {
			if err := local.Append(t.Name, p, evs); err != nil {
				return err
			}
		}
	}
	return nil
}

// check compares a view with an expectation and describes each mismatch.
func check(store *serving.Store, local *speed.Local, ex *expectation) []string {
	var problems []string
	if ex.late != nil {
		if st, _ := local.Stats(ex.view.Name); st.Late != *ex.late {
			problems = append(problems, fmt.Sprintf("late events: want %d, got %d", *ex.late, st.Late))
		}
	}
	if !ex.checkRows {
		return problems
	}
	got, _, _, _ := store.Query(ex.view.Name, serving.Filter{})
	ng := len(ex.view.GroupBy)
	slices.SortStableFunc(got, func(a, b viewrow.Row) int { return compareRows(ex.schema, a, b) })
	want := sortExpected(ex, ng)
	if len(got) != len(want) {
		p := fmt.Sprintf("want %d rows, got %d:", len(want), len(got))
		for _, r := range got {
			p += "\n    " + string(serving.AppendRowJSON(nil, ex.schema, r))
		}
		return append(problems, p)
	}
	for i, w := range want {
		g := got[i]
		for _, c := range w.cols {
			if len(problems) >= maxMismatches {
				return append(problems, "(more mismatches not shown)")
			}
			if msg := checkColumn(ex.schema, c, g); msg != "" {
				problems = append(problems, fmt.Sprintf("row %d (line %d; %s): column %q: %s", i+1, w.line, rowLabel(ex.schema, ng, g), c.name, msg))
			}
		}
	}
	return problems
}

// sortExpected orders the expected rows like the view's rows when each
// names its window_start and every group-by field.
func sortExpected(ex *expectation, ng int) []expectRow {
	rows := slices.Clone(ex.rows)
	key := func(r expectRow) (viewrow.Row, bool) {
		out := viewrow.Row{Group: make([]event.Value, ng)}
		found := 0
		for _, c := range r.cols {
			switch {
			case c.col == 0 && !c.null:
				out.Start = c.value.I
				found++
			case c.col >= 2 && c.col < 2+ng:
				if !c.null {
					out.Group[c.col-2] = c.value
				}
				found++
			}
		}
		return out, found == 1+ng
	}
	for _, r := range rows {
		if _, ok := key(r); !ok {
			return rows
		}
	}
	slices.SortStableFunc(rows, func(a, b expectRow) int {
		ka, _ := key(a)
		kb, _ := key(b)
		return compareRows(ex.schema, ka, kb)
	})
	return rows
}

// compareRows orders rows by window start, then group values in their
// natural order (null first).
func compareRows(schema event.Schema, a, b viewrow.Row) int {
	if c := cmp.Compare(a.Start, b.Start); c != 0 {
		return c
	}
	for i := range min(len(a.Group), len(b.Group)) {
		x, y := a.Group[i], b.Group[i]
		if x.Valid != y.Valid {
			if !x.Valid {
				return -1
			}
			return 1
		}
		var c int
		switch schema[2+i].Type {
		case event.TypeString:
			c = strings.Compare(x.S, y.S)
		case event.TypeDouble:
			c = cmp.Compare(x.F, y.F)
		default:
			c = cmp.Compare(x.I, y.I)
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// rowLabel names a row by its window and group, for messages.
func rowLabel(schema event.Schema, ng int, r viewrow.Row) string {
	var b strings.Builder
	b.WriteString("window_start ")
	b.WriteString(event.FormatTime(r.Start))
	for i := range min(ng, len(r.Group)) {
		fmt.Fprintf(&b, ", %s %s", schema[2+i].Name, event.AppendValueJSON(nil, schema[2+i].Type, r.Group[i]))
	}
	return b.String()
}

// checkColumn compares one expected column with a row; "" when it matches.
func checkColumn(schema event.Schema, c expectCol, r viewrow.Row) string {
	if c.col < 0 {
		if r.Final != c.final {
			return fmt.Sprintf("want %t, got %t", c.final, r.Final)
		}
		return ""
	}
	var got event.Value
	switch ng := len(r.Group); {
	case c.col == 0:
		got = event.Value{I: r.Start, Valid: true}
	case c.col == 1:
		got = event.Value{I: r.End, Valid: true}
	case c.col < 2+ng:
		got = r.Group[c.col-2]
	default:
		if i := c.col - 2 - ng; i < len(r.Aggs) {
			got = r.Aggs[i]
		}
	}
	typ := schema[c.col].Type
	gotText := string(event.AppendValueJSON(nil, typ, got))
	wantText := "null"
	if !c.null {
		wantText = string(event.AppendValueJSON(nil, typ, c.value))
	}
	if c.approx {
		wantText = fmt.Sprintf("%s within %g%%", strconv.FormatFloat(c.value.F, 'g', -1, 64), c.within*100)
	}
	if !matches(typ, c, got) {
		return fmt.Sprintf("want %s, got %s", wantText, gotText)
	}
	return ""
}

func matches(typ event.FieldType, c expectCol, got event.Value) bool {
	if c.null || !got.Valid {
		return c.null == !got.Valid
	}
	switch {
	case c.approx:
		g := got.F
		if typ != event.TypeDouble {
			g = float64(got.I)
		}
		return g == c.value.F || math.Abs(g-c.value.F) <= c.within*math.Abs(c.value.F)
	case typ == event.TypeString:
		return got.S == c.value.S
	case typ == event.TypeDouble:
		return got.F == c.value.F || math.Abs(got.F-c.value.F) <= c.within*math.Abs(c.value.F)
	}
	return got.I == c.value.I
}

// Check reads and checks a test file and the pipeline it names without
// running its cases (what `lambdaflow validate` does with a test file) and
// returns how many cases it has. sinks and errors are as Run's.
func Check(path string, sinks pipelines.SinkTypes) (cases int, err error) {
	tf, err := load(path, sinks)
	if err != nil {
		return 0, err
	}
	return len(tf.cases), nil
}

// IsTestFile tells a test file from a pipeline file by its top-level keys:
// a test file names its pipeline and has no version. A file that is not
// YAML, or not a mapping, is not a test file (validating it as a pipeline
// says what is wrong).
func IsTestFile(data []byte) bool {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return false
	}
	_, hasPipeline := top["pipeline"]
	_, hasVersion := top["version"]
	return hasPipeline && !hasVersion
}
