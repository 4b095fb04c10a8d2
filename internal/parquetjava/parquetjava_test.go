package parquetjava

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	out := "file\t{\"path\":\"a.parquet\",\"rows\":2,\"created_by\":\"w\",\"kv\":{\"k\":\"v\"}}\n" +
		"column\t{\"path\":\"x\",\"type\":\"INT64\",\"logical\":\"\",\"repetition\":\"OPTIONAL\",\"codec\":\"ZSTD\",\"encodings\":[\"PLAIN\"],\"values\":2,\"stats\":{\"nulls\":1,\"min\":7,\"max\":7}}\n" +
		"column\t{\"path\":\"d\",\"type\":\"DOUBLE\",\"logical\":\"\",\"repetition\":\"REQUIRED\",\"codec\":\"ZSTD\",\"encodings\":[\"PLAIN\"],\"values\":2,\"stats\":{\"nulls\":0}}\n" +
		"row\t[7,\"" + Double(-0.5) + "\"]\n" +
		"row\t[null,\"" + Double(math.Inf(1)) + "\"]\n" +
		"file\t{\"path\":\"b.parquet\",\"rows\":0,\"created_by\":\"w\",\"kv\":{}}\n"
	got, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "a.parquet" || got[0].KV["k"] != "v" || len(got[0].Columns) != 2 || got[1].Path != "b.parquet" || len(got[1].Records) != 0 {
		t.Fatalf("parse: %+v", got)
	}
	want := [][]any{{json.Number("7"), "bfe0000000000000"}, {nil, "7ff0000000000000"}}
	if !reflect.DeepEqual(got[0].Records, want) {
		t.Fatalf("records %v, want %v", got[0].Records, want)
	}
	if c := got[0].Columns[0]; c.Stats == nil || c.Stats.Nulls != 1 || c.Stats.Min != json.Number("7") {
		t.Fatalf("column x: %+v", c)
	}
	if b := CheckStats(t, got[0]); !reflect.DeepEqual(b, []bool{true, false}) {
		t.Fatalf("bounds %v, want [true false]", b)
	}
	for _, bad := range []string{"row\t[1]\n", "file\t{\n", "what\t{}\n"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q): no error", bad)
		}
	}
}
