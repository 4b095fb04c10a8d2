package batch

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// viewFileName is a view's batch result under <data_dir>/views/<view>/;
// docs/lake-format.md specifies it.
const viewFileName = "batch.json"

// viewFileFormat is the format view files are written in. Format 1, written
// by earlier builds, is read too: its timestamps are UTC µs (which the exact
// JSON form reads as well) and its bools 0 or 1.
const viewFileFormat = 2

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
	Columns []string `json:"columns"`
	// Rows holds each row as a JSON array of its values in column order, in
	// the exact JSON form of package event.
	Rows []json.RawMessage `json:"rows"`
}

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
		s.rows[rowKey{r.Start, event.GroupKey(r.Group)}] = r
	}
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

// rowJSON appends r as a JSON array of its values in schema order
// (viewrow's layout), in the exact JSON form; vals is scratch space.
func rowJSON(b []byte, schema event.Schema, r viewrow.Row, vals []event.Value) ([]byte, []event.Value) {
	vals = r.AppendValues(vals[:0])
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendExactJSON(b, schema[i].Type, v)
	}
	return append(b, ']'), vals
}

// rowValue reads one value of a view file row of the given format.
func rowValue(format int, t event.FieldType, x any) (event.Value, error) {
	if n, ok := x.(json.Number); ok && format == 1 && t == event.TypeBool {
		switch n {
		case "0":
			return event.Value{Valid: true}, nil
		case "1":
			return event.Value{I: 1, Valid: true}, nil
		}
	}
	return event.ExactJSONValue(t, x)
}

// encodeViewFile encodes a view's batch result as its view file.
func encodeViewFile(v *pipelines.View, from *pipelines.Topic, st *viewState) ([]byte, error) {
	schema := pipelines.ViewSchema(v, from)
	vf := viewFile{Format: viewFileFormat, View: v.Name, LakeVersion: st.lakeVersion}
	if st.hasHorizon {
		h := st.horizon
		vf.Horizon = &h
	}
	for _, f := range schema {
		vf.Columns = append(vf.Columns, f.Name)
	}
	rows := st.sortedRows()
	vf.Rows = make([]json.RawMessage, len(rows))
	var buf []byte
	var vals []event.Value
	for i, r := range rows {
		buf, vals = rowJSON(buf, schema, r, vals)
		vf.Rows[i], buf = buf, buf[len(buf):]
	}
	b, err := json.Marshal(vf)
	if err != nil {
		return nil, fmt.Errorf("batch: view %s: %w", v.Name, err)
	}
	return b, nil
}

// writeViewData stores an encoded view file in dir atomically.
func writeViewData(dir string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, viewFileName), data)
}

// readViewFile loads a view's batch result; a missing file is no result.
func readViewFile(dir string, v *pipelines.View, from *pipelines.Topic) (*viewState, error) {
	path := filepath.Join(dir, viewFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newViewState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return decodeViewFile(data, path, v, from)
}

// decodeViewFile reads a view file; where names it in errors.
func decodeViewFile(data []byte, where string, v *pipelines.View, from *pipelines.Topic) (*viewState, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var vf viewFile
	if err := dec.Decode(&vf); err != nil {
		return nil, fmt.Errorf("batch: view file %s: %w", where, err)
	}
	if vf.Format != 1 && vf.Format != viewFileFormat {
		return nil, fmt.Errorf("batch: view file %s: format %d, want 1 or %d", where, vf.Format, viewFileFormat)
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
	var err error
	for i, raw := range vf.Rows {
		var row []any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err = dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("batch: view file %s: row %d: %w", where, i, err)
		}
		if len(row) != len(schema) {
			return nil, fmt.Errorf("batch: view file %s: row %d has %d values, want %d", where, i, len(row), len(schema))
		}
		vals := make([]event.Value, len(schema))
		for j := range row {
			if vals[j], err = rowValue(vf.Format, schema[j].Type, row[j]); err != nil {
				return nil, fmt.Errorf("batch: view file %s: row %d, %s: %w", where, i, schema[j].Name, err)
			}
		}
		r, ok := viewrow.FromValues(vals, ng, len(v.Aggregates))
		if !ok {
			return nil, fmt.Errorf("batch: view file %s: row %d has %d values, want %d group-by fields", where, i, len(vals), ng)
		}
		st.rows[rowKey{r.Start, event.GroupKey(r.Group)}] = r
	}
	return st, nil
}
