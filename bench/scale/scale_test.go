package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

func TestSteadyRate(t *testing.T) {
	s := func(ms int, lag int64) sample { return sample{at: time.Duration(ms) * time.Millisecond, readLag: lag} }
	for _, tc := range []struct {
		name    string
		samples []sample
		want    float64
	}{
		// 1,000 events: the first sample at or below 900 is at 1 s (800), the
		// first at or below 100 at 3 s (100): 700 events in 2 s.
		{"ramp", []sample{s(0, 1000), s(500, 1000), s(1000, 800), s(2000, 400), s(3000, 100), s(3500, 0)}, 350},
		{"too fast for the polls", []sample{s(0, 1000), s(200, 0)}, 0},
		{"never below 10 %", []sample{s(0, 1000), s(1000, 500)}, 0},
		{"none", nil, 0},
	} {
		if got := steadyRate(tc.samples, 1000); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRotate(t *testing.T) {
	for r, want := range []string{"[1 2 3]", "[2 3 1]", "[3 1 2]", "[1 2 3]"} {
		if got := fmt.Sprint(rotate([]int{1, 2, 3}, r)); got != want {
			t.Errorf("round %d: %s, want %s", r, got, want)
		}
	}
}

func TestCPUFiles(t *testing.T) {
	for _, tc := range []struct {
		v2     bool
		share  float64
		weight int
		want   string
	}{
		{false, 0.25, 8, "[[cpu.shares 8192] [cpu.cfs_period_us 100000] [cpu.cfs_quota_us 25000]]"},
		{false, 0, 8, "[[cpu.shares 8192]]"},
		{true, 0.5, 1, "[[cpu.weight 100] [cpu.max 50000 100000]]"},
		{true, 0, 1000, "[[cpu.weight 10000]]"}, // the v2 maximum
	} {
		if got := fmt.Sprint(cpuFiles(tc.v2, tc.share, tc.weight)); got != tc.want {
			t.Errorf("cpuFiles(%v, %v, %v) = %s, want %s", tc.v2, tc.share, tc.weight, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cs, err := parseConsumers("sink, speed")
	if err != nil || len(cs) != 2 || cs[0].consumer != "sink.warehouse" || cs[1].role != "speed" {
		t.Fatalf("parseConsumers: %+v, %v", cs, err)
	}
	if _, err := parseConsumers("speed,batch"); err == nil || !strings.Contains(err.Error(), `"batch": want speed, lake or sink`) {
		t.Fatalf("parseConsumers(batch): %v", err)
	}
	if _, err := parseInts("1,0"); err == nil || !strings.Contains(err.Error(), `"0" is not a worker count`) {
		t.Fatalf("parseInts(1,0): %v", err)
	}
}

// The lines the harness prints for the backlog parse back into the topic's
// fields, spread over 40 minutes in order.
func TestEvents(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	lines := events(4, now)
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	if want := `{"id":"e0","ts":"2026-01-02T14:15:00Z","host":"h0","region":"eu","cpu":0.000,"bytes":0}`; lines[0] != want {
		t.Fatalf("first event %s, want %s", lines[0], want)
	}
	if !strings.Contains(lines[3], `"ts":"2026-01-02T14:45:00Z"`) || !strings.Contains(lines[3], `"region":"sa"`) {
		t.Fatalf("last event %s", lines[3])
	}
}

// A node id names its worker by the HTTP port, not by a port that merely
// starts the same.
func TestWorkerOf(t *testing.T) {
	a, b := &measure.Server{URL: "http://127.0.0.1:4100"}, &measure.Server{URL: "http://127.0.0.1:41000"}
	ws := []*measure.Server{a, b}
	if w := workerOf("box-41000-abcd1234", ws); w != b {
		t.Errorf("box-41000-…: %v, want the worker on 41000", w)
	}
	if w := workerOf("box-4100-abcd1234", ws); w != a {
		t.Errorf("box-4100-…: %v, want the worker on 4100", w)
	}
	if w := workerOf("box-4200-abcd1234", ws); w != nil {
		t.Errorf("box-4200-…: %v, want none", w)
	}
}

func TestMovesTable(t *testing.T) {
	var b strings.Builder
	o := options{consumers: allConsumers[:1]}
	movesTable(&b, o, map[string][]moves{"speed": {{kill: 7 * time.Second, join: 2 * time.Second, stop: time.Second}, {kill: 8 * time.Second, join: 3 * time.Second, stop: 2 * time.Second}}})
	if want := "| speed.by_region | 7.5 s (7.0 / 8.0) | 2.5 s (2.0 / 3.0) | 1.5 s (1.0 / 2.0) |"; !strings.Contains(b.String(), want) {
		t.Errorf("table\n%s\nlacks %s", b.String(), want)
	}
}
