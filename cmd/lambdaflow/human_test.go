package main

import (
	"math"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/api"
)

func TestHumanUnits(t *testing.T) {
	for _, c := range []struct {
		sec  float64
		want string
	}{
		{0, "0s"}, {-3, "0s"}, {0.0004, "1ms"}, {0.35, "350ms"}, {0.9996, "1.0s"}, {4.24, "4.2s"}, {9.96, "10s"},
		{42.4, "42s"}, {59.6, "1m00s"}, {187, "3m07s"}, {3599.6, "1h00m"}, {7500, "2h05m"}, {47*3600 + 59*60, "47h59m"},
		{48 * 3600, "2d00h"}, {29127247.526, "337d02h"}, {math.NaN(), "–"},
	} {
		if got := humanSeconds(c.sec); got != c.want {
			t.Errorf("humanSeconds(%v) = %q, want %q", c.sec, got, c.want)
		}
	}
	for _, c := range []struct {
		n    float64
		want string
	}{{0, "0"}, {9999, "9999"}, {12345, "12.3k"}, {4_500_000, "4.5M"}, {1.23e9, "1.2G"}} {
		if got := humanCount(c.n); got != c.want {
			t.Errorf("humanCount(%v) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		r    float64
		want string
	}{{0, "0/s"}, {3.5, "3.5/s"}, {250, "250/s"}, {12345, "12.3k/s"}} {
		if got := humanRate(c.r); got != c.want {
			t.Errorf("humanRate(%v) = %q, want %q", c.r, got, c.want)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1536, "1.5KiB"}, {3 << 30, "3.0GiB"}} {
		if got := humanBytes(c.n); got != c.want {
			t.Errorf("humanBytes(%v) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestWriteLag(t *testing.T) {
	var buf strings.Builder
	writeLag(&buf, []api.Lag{
		{Consumer: "lake", Topic: "metrics", Partition: 0, Offset: 100, EndOffset: 2336, Lag: 2236, LagSeconds: 287.4,
			EventTimeLagSeconds: 29127247.526, ReadOffset: 2330, ReadLag: 6, ReadLagSeconds: 0.42},
		{Consumer: "speed.cpu_by_region", Topic: "metrics", Partition: 1, Offset: 5, EndOffset: 5, ReadOffset: 5},
	})
	want := "" +
		"CONSUMER             TOPIC    PARTITION  OFFSET  END-OFFSET  LAG   LAG-TIME  READ-OFFSET  READ-LAG  READ-LAG-TIME  EVENT-TIME-LAG\n" +
		"lake                 metrics  0          100     2336        2236  4m47s     2330         6         420ms          337d02h\n" +
		"speed.cpu_by_region  metrics  1          5       5           0     0s        5            0         0s             0s\n"
	if buf.String() != want {
		t.Errorf("lag table:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteTopics(t *testing.T) {
	var buf strings.Builder
	writeTopics(&buf, []api.Topic{
		{Name: "metrics", Kind: "events", Publishable: true, Partitions: []api.Partition{
			{Partition: 0, FirstOffset: 0, LastOffset: 9, EndOffset: 10, Bytes: 1200},
			{Partition: 1, FirstOffset: -1, LastOffset: -1, EndOffset: 0},
		}},
		{Name: "cpu_by_region", Kind: "view", Refusal: "topic \"cpu_by_region\" holds the rows of view cpu_by_region", Partitions: []api.Partition{
			{Partition: 0, FirstOffset: 3, LastOffset: 4, EndOffset: 5, Bytes: 90},
		}},
	})
	want := "" +
		"TOPIC          KIND    PARTITION  FIRST-OFFSET  LAST-OFFSET  EVENTS  BYTES\n" +
		"metrics        events  0          0             9            10      1200\n" +
		"metrics        events  1          -1            -1           0       0\n" +
		"cpu_by_region  view    0          3             4            2       90\n" +
		"\n" +
		"Publishing is refused to:\n" +
		"  cpu_by_region: topic \"cpu_by_region\" holds the rows of view cpu_by_region\n"
	if buf.String() != want {
		t.Errorf("topics:\n%s\nwant:\n%s", buf.String(), want)
	}
}
