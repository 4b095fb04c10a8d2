package batch

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// viewFileName is a view's batch result under <data_dir>/views/<view>/;
// docs/lake-format.md specifies it.
const viewFileName = "batch.json"

const viewFileFormat = 1

// viewFile is the durable batch result of one view: every batch row, the
// horizon, and the lake version the rows were computed from (which tells
// the next run which hours got new files since).
type viewFile struct {
	Format  int    `json:"format"`
	View    string `json:"view"`
	Horizon *int64 `json:"horizon"` // UTC µs; null before the first run
	// LakeVersion is the topic manifest version the last run read.
	LakeVersion int64 `json:"lake_version"`
	// Columns names the values of each row: window_start, window_end, the
	// group-by fields, then the aggregates (pipelines.ViewSchema).
	Columns []string  `json:"columns"`
	Rows    []viewRow `json:"rows"`
}

// viewRow is one row as [window_start, window_end, group..., aggs...],
// each value a JSON number, string, bool or null.
type viewRow []any

// viewState is a view's batch result in memory.
type viewState struct {
	horizon     int64
	hasHorizon  bool
	lakeVersion int64
	rows        map[rowKey]viewrow.Row
}

type rowKey struct {
	start int64
	group string
}

func newViewState() *viewState { return &viewState{rows: map[rowKey]viewrow.Row{}} }

// replace installs rows computed for windows starting in [from, to).
func (s *viewState) replace(from, to int64, rows []viewrow.Row, pl *plan.Plan) {
	for k := range s.rows {
		if k.start >= from && k.start < to {
			delete(s.rows, k)
		}
	}
	for _, r := range rows {
		s.rows[rowKey{r.Start, groupString(r.Group)}] = r
	}
}

// groupString is a map key for group values.
func groupString(vals []event.Value) string {
	b := make([]byte, 0, 32)
	for _, v := range vals {
		b = fmt.Appendf(b, "%t|%d|%x|%q;", v.Valid, v.I, math.Float64bits(v.F), v.S)
	}
	return string(b)
}

// sortedRows returns the rows ordered by window start, then group.
func (s *viewState) sortedRows() []viewrow.Row {
	keys := make([]rowKey, 0, len(s.rows))
	for k := range s.rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		switch {
		case a.group < b.group:
			return -1
		case a.group > b.group:
			return 1
		}
		return 0
	})
	out := make([]viewrow.Row, len(keys))
	for i, k := range keys {
		out[i] = s.rows[k]
	}
	return out
}

// valueJSON encodes a value of type t. Infinities and NaN, which JSON
// lacks, are written as strings.
func valueJSON(v event.Value, t event.FieldType) any {
	switch {
	case !v.Valid:
		return nil
	case t == event.TypeString:
		return v.S
	case t == event.TypeDouble:
		if math.IsInf(v.F, 0) || math.IsNaN(v.F) {
			return fmt.Sprint(v.F)
		}
		return v.F
	default:
		return v.I
	}
}

func valueFromJSON(x any, t event.FieldType) (event.Value, error) {
	if x == nil {
		return event.Value{}, nil
	}
	switch t {
	case event.TypeString:
		s, ok := x.(string)
		if !ok {
			return event.Value{}, fmt.Errorf("want a string, got %v", x)
		}
		return event.Value{S: s, Valid: true}, nil
	case event.TypeDouble:
		switch v := x.(type) {
		case json.Number:
			f, err := v.Float64()
			return event.Value{F: f, Valid: err == nil}, err
		case string:
			f, err := strconv.ParseFloat(v, 64)
			return event.Value{F: f, Valid: err == nil}, err
		}
	default:
		if v, ok := x.(json.Number); ok {
			i, err := v.Int64()
			return event.Value{I: i, Valid: err == nil}, err
		}
	}
	return event.Value{}, fmt.Errorf("unexpected value %v for %s", x, t)
}

// writeViewFile stores a view's batch result atomically.
func writeViewFile(dir string, v *pipelines.View, from *pipelines.Topic, st *viewState) error {
	schema := pipelines.ViewSchema(v, from)
	vf := viewFile{Format: viewFileFormat, View: v.Name, LakeVersion: st.lakeVersion}
	if st.hasHorizon {
		h := st.horizon
		vf.Horizon = &h
	}
	for _, f := range schema {
		vf.Columns = append(vf.Columns, f.Name)
	}
	for _, r := range st.sortedRows() {
		row := make(viewRow, 0, len(schema))
		row = append(row, r.Start, r.End)
		for _, v := range append(slices.Clip(r.Group), r.Aggs...) {
			row = append(row, valueJSON(v, schema[len(row)].Type))
		}
		vf.Rows = append(vf.Rows, row)
	}
	b, err := json.Marshal(vf)
	if err != nil {
		return fmt.Errorf("batch: view %s: %w", v.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, viewFileName), b)
}

// readViewFile loads a view's batch result; a missing file is no result.
func readViewFile(dir string, v *pipelines.View, from *pipelines.Topic) (*viewState, error) {
	path := filepath.Join(dir, viewFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newViewState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.UseNumber()
	var vf viewFile
	if err := dec.Decode(&vf); err != nil {
		return nil, fmt.Errorf("batch: view file %s: %w", path, err)
	}
	if vf.Format != viewFileFormat {
		return nil, fmt.Errorf("batch: view file %s: format %d, want %d", path, vf.Format, viewFileFormat)
	}
	schema := pipelines.ViewSchema(v, from)
	names := make([]string, len(schema))
	for i, f := range schema {
		names[i] = f.Name
	}
	st := newViewState()
	if !slices.Equal(names, vf.Columns) {
		// The view's definition changed: the old rows mean something else.
		// Start over; the next run recomputes everything.
		return st, nil
	}
	if vf.Horizon != nil {
		st.horizon, st.hasHorizon = *vf.Horizon, true
	}
	st.lakeVersion = vf.LakeVersion
	ng := len(v.GroupBy)
	for i, row := range vf.Rows {
		if len(row) != len(schema) {
			return nil, fmt.Errorf("batch: view file %s: row %d has %d values, want %d", path, i, len(row), len(schema))
		}
		vals := make([]event.Value, len(schema))
		for j := range row {
			if vals[j], err = valueFromJSON(row[j], schema[j].Type); err != nil {
				return nil, fmt.Errorf("batch: view file %s: row %d, %s: %w", path, i, schema[j].Name, err)
			}
		}
		r, ok := viewrow.FromValues(vals, ng)
		if !ok {
			return nil, fmt.Errorf("batch: view file %s: row %d has %d values, want %d group-by fields", path, i, len(vals), ng)
		}
		st.rows[rowKey{r.Start, groupString(r.Group)}] = r
	}
	return st, nil
}
