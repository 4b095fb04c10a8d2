package plan

import (
	"math"
	"testing"
)

func TestCombineWatermarks(t *testing.T) {
	seen := func(newest int64) PartitionTime { return PartitionTime{Newest: newest, Seen: true} }
	idle := func(p PartitionTime) PartitionTime { p.Idle = true; return p }
	f := func(name string, parts []PartitionTime, lateness, current, want int64) {
		t.Helper()
		if got := CombineWatermarks(parts, lateness, current); got != want {
			t.Errorf("%s: watermark %d, want %d", name, got, want)
		}
	}
	f("no partitions", nil, 0, NoWatermark, NoWatermark)
	f("minimum over active partitions", []PartitionTime{seen(100), seen(40), seen(70)}, 10, NoWatermark, 30)
	f("an active partition without events holds it back", []PartitionTime{seen(100), {}}, 0, NoWatermark, NoWatermark)
	f("idle partitions are left out", []PartitionTime{seen(100), idle(seen(40)), idle(PartitionTime{})}, 10, NoWatermark, 90)
	f("all idle: maximum over all", []PartitionTime{idle(seen(100)), idle(seen(40)), idle(PartitionTime{})}, 10, NoWatermark, 90)
	f("all idle, none seen", []PartitionTime{idle(PartitionTime{}), idle(PartitionTime{})}, 10, NoWatermark, NoWatermark)
	f("never moves back", []PartitionTime{seen(100), seen(40)}, 0, 60, 60)
	f("moves forward", []PartitionTime{seen(100), seen(80)}, 0, 60, 80)
	f("huge lateness saturates", []PartitionTime{seen(-10)}, math.MaxInt64, NoWatermark, math.MinInt64+1)
}

func TestEarlier(t *testing.T) {
	for _, c := range []struct{ t, d, want int64 }{
		{100, 30, 70},
		{-100, 30, -130},
		{math.MinInt64 + 5, 10, math.MinInt64 + 1},
		{math.MaxInt64 - 5, -10, math.MaxInt64},
		{0, math.MinInt64, math.MaxInt64},
	} {
		if got := Earlier(c.t, c.d); got != c.want {
			t.Errorf("Earlier(%d, %d) = %d, want %d", c.t, c.d, got, c.want)
		}
	}
}

// TestActivateAfterPause: the first event after every partition went idle
// makes every partition active, so the watermark stays until the others'
// events of the same instant are in; after a partial quiet only the
// partition with the event becomes active.
func TestActivateAfterPause(t *testing.T) {
	// Three partitions paused at 100, 90 and 80: the watermark is 100.
	parts := []PartitionTime{{Newest: 100, Seen: true, Idle: true}, {Newest: 90, Seen: true, Idle: true}, {Newest: 80, Seen: true, Idle: true}}
	wm := CombineWatermarks(parts, 0, NoWatermark)
	if wm != 100 {
		t.Fatalf("paused: watermark %d, want 100", wm)
	}
	// Partition 1 is read first after the pause, with events up to 200;
	// partition 0 got events from 101 on in the same instant.
	if !Activate(parts, 1) {
		t.Fatal("the first event after a pause: Activate reports no resume")
	}
	parts[1].Newest = 200
	for i, p := range parts {
		if p.Idle {
			t.Errorf("after the pause partition %d is still idle", i)
		}
	}
	if wm = CombineWatermarks(parts, 0, wm); wm != 100 {
		t.Fatalf("one partition read after the pause: watermark %d, want 100 (held by the others)", wm)
	}
	if Activate(parts, 0) {
		t.Error("an active partition's event: Activate reports a resume")
	}
	parts[0].Newest = 199
	// Partition 2 had nothing; found idle again, it no longer holds it.
	parts[2].Idle = true
	if wm = CombineWatermarks(parts, 0, wm); wm != 199 {
		t.Fatalf("partition 2 idle again: watermark %d, want 199", wm)
	}
	// Partition 2 comes back while others are active: it alone turns active.
	parts[0].Idle = true
	if Activate(parts, 2) {
		t.Error("a partition back while another is active: Activate reports a resume")
	}
	if !parts[0].Idle || parts[2].Idle {
		t.Errorf("after a partial quiet: idle %v %v %v, want true false false", parts[0].Idle, parts[1].Idle, parts[2].Idle)
	}
}
