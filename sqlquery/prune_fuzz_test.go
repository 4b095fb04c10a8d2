package sqlquery

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// FuzzTableBounds: whatever shape a parse has, reading bounds from it
// never panics, and a bound it finds is a span of times (lo ≤ hi or an
// empty one, never past the years a timestamp holds by more than the
// longest interval).
func FuzzTableBounds(f *testing.F) {
	f.Add(`{"node":{"type":"SELECT_NODE","sample":null,"from_table":{"type":"BASE_TABLE","sample":null,"table_name":"clicks","alias":"","query_location":14,"column_name_alias":[]},
		"where_clause":{"type":"CONJUNCTION_AND","children":[{"type":"COMPARE_GREATERTHAN","left":{"type":"COLUMN_REF","column_names":["_event_time"]},
		"right":{"type":"FUNCTION","function_name":"-","children":[{"type":"FUNCTION","function_name":"now","children":[]},
		{"type":"FUNCTION","function_name":"to_days","children":[{"type":"OPERATOR_CAST","cast_type":{"id":"INTEGER"},"child":{"type":"VALUE_CONSTANT","value":{"is_null":false,"value":2}}}]}]}},
		{"type":"COMPARE_BETWEEN","input":{"type":"COLUMN_REF","column_names":["ts"]},"lower":{"type":"VALUE_CONSTANT","value":{"value":"2026-03-01"}},"upper":{"type":"OPERATOR_CAST","cast_type":{"id":"DATE"},"child":{"type":"VALUE_CONSTANT","value":{"value":"2026-03-02"}}}}]}}}`)
	f.Add(`{"type":"SELECT_NODE","from_table":{"type":"JOIN","ref_type":"REGULAR","left":{"type":"BASE_TABLE","query_location":1},"right":null},"where_clause":{"type":"COMPARE_EQUAL","left":1,"right":[]}}`)
	f.Fuzz(func(t *testing.T, js string) {
		var tree any
		if json.Unmarshal([]byte(js), &tree) != nil {
			return
		}
		for _, b := range tableBounds(tree, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
			for col, r := range b {
				if r[0] != math.MinInt64 && r[0] < -400e15 || r[1] != math.MaxInt64 && r[1] > 400e15 {
					t.Fatalf("%s: bounds %v past any time", col, r)
				}
			}
		}
	})
}
