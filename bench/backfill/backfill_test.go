package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestGenerateFlights(t *testing.T) {
	lines := generateFlights(3650, 1)
	if len(lines) != 3650 {
		t.Fatalf("%d lines, want 3650", len(lines))
	}
	again := generateFlights(3650, 1)
	if strings.Join(lines, "\n") != strings.Join(again, "\n") {
		t.Fatal("the same seed gave different flights")
	}
	ids := map[string]bool{}
	perDay := map[string]int{}
	lastDay := ""
	for i, l := range lines {
		var f map[string]any
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if len(f) != 17 { // id and 16 fields
			t.Fatalf("line %d has %d keys: %s", i, len(f), l)
		}
		id := f["id"].(string)
		if ids[id] {
			t.Fatalf("id %s twice", id)
		}
		ids[id] = true
		ts, err := time.Parse(time.RFC3339, f["sched_dep"].(string))
		if err != nil {
			t.Fatal(err)
		}
		day := ts.Format(time.DateOnly)
		if day < lastDay {
			t.Fatalf("line %d: day %s after %s: days must come in order", i, day, lastDay)
		}
		lastDay = day
		perDay[day]++
		if f["cancelled"] == true && f["dep_delay"] != nil {
			t.Fatalf("line %d: a cancelled flight with a delay: %s", i, l)
		}
	}
	if len(perDay) != 365 || perDay["2013-01-01"] != 10 || perDay["2013-12-31"] != 10 {
		t.Fatalf("%d days, %d flights on the first, %d on the last; want 365, 10, 10", len(perDay), perDay["2013-01-01"], perDay["2013-12-31"])
	}
	// Within a day the order is shuffled: ids do not increase throughout.
	if strings.Compare(lines[0], lines[1]) < 0 && strings.Compare(lines[1], lines[2]) < 0 && strings.Compare(lines[2], lines[3]) < 0 {
		t.Fatal("the first day is in generation order: not shuffled")
	}
}

func TestCompareAgg(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, c := range []struct {
		kind, got, want string
		ok              bool
	}{
		{"exact", "12", "12", true},
		{"exact", "12", "13", false},
		{"exact", "null", "null", true},
		{"exact", "null", "0", false},
		{"avg", "1.0000000000001", "1", true},
		{"avg", "1.001", "1", false},
		{"distinct", "101", "100", true},
		{"distinct", "103", "100", false},
		// 11 sorted values, q=0.5: rank 5 (value 50); ranks 4–6 are allowed, ±1 %.
		{"sorted:0.5", "50", "[0,10,20,30,40,50,60,70,80,90,100]", true},
		{"sorted:0.5", "60.5", "[0,10,20,30,40,50,60,70,80,90,100]", true},
		{"sorted:0.5", "61", "[0,10,20,30,40,50,60,70,80,90,100]", false},
		{"sorted:0.5", "39", "[0,10,20,30,40,50,60,70,80,90,100]", false},
		{"sorted:0.95", "null", "null", true},
		{"sorted:0.95", "3", "null", false},
		{"sorted:0.95", "null", "[1]", false},
	} {
		err := compareAgg(c.kind, raw(c.got), raw(c.want))
		if (err == nil) != c.ok {
			t.Errorf("compareAgg(%s, %s, %s) = %v, want ok=%v", c.kind, c.got, c.want, err, c.ok)
		}
	}
}
