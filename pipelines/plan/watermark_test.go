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
