package pipelines

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"5m", 5 * time.Minute, true},
		{"168h", 168 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"500ms", 500 * time.Millisecond, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{"0", 0, true},
		{"0s", 0, true},
		{"-1m", -time.Minute, true},
		{"-1d", -24 * time.Hour, true},
		{"+2h", 2 * time.Hour, true},
		{"", 0, false},
		{"-", 0, false},
		{"90", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"1d-1h", 0, false},
		{"1d+1h", 0, false},
		{"5x", 0, false},
		{"7 days", 0, false},
		{"106752d", 0, false},
		{"106751d23h47m16s854775807ns", 1<<63 - 1, true},
		{"106751d23h47m16s854775808ns", 0, false},
		{"106751d23h47m16s", (106751*24+23)*time.Hour + 47*time.Minute + 16*time.Second, true},
	} {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got.D() != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", c.in, got.D(), err, c.want, c.ok)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "0s",
		168 * time.Hour:         "168h",
		90 * time.Second:        "1m30s",
		5 * time.Minute:         "5m",
		-time.Minute:            "-1m",
		90 * time.Minute:        "1h30m",
		time.Hour + time.Second: "1h0m1s",
		500 * time.Millisecond:  "500ms",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"0", 0, true},
		{"64KiB", 64 << 10, true},
		{"10MB", 10e6, true},
		{"2GiB", 2 << 30, true},
		{"1TB", 1e12, true},
		{"3TiB", 3 << 40, true},
		{"1 GiB", 1 << 30, true},
		{"10kb", 10e3, true},
		{"100B", 100, true},
		{"8EiB", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"8388608TiB", 0, false},
		{"", 0, false},
		{"GiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5GiB", 0, false},
		{"10 gigs", 0, false},
		{"0x10", 0, false},
		{"10  MB", 0, false},
	} {
		got, err := ParseByteSize(c.in)
		if (err == nil) != c.ok || int64(got) != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1d12h")); err != nil || d.D() != 36*time.Hour {
		t.Fatalf("UnmarshalText = %v, %v", d, err)
	}
	if b, err := d.MarshalText(); err != nil || string(b) != "36h" {
		t.Errorf("MarshalText = %s, %v", b, err)
	}
	err := d.UnmarshalText([]byte("5x"))
	if want := `invalid duration "5x": want a number and a unit, e.g. 90s, 5m, 168h or 7d`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = ParseByteSize("1.5GiB")
	if want := `invalid size "1.5GiB": want a whole number of bytes, optionally with a unit, e.g. 1024, 64KiB, 10MB or 2GiB`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
