package main

import (
	"fmt"
	"math"
	"strconv"
)

// humanSeconds shows a duration the way an operator reads lag, in one word
// so that tables stay splittable by whitespace: "0s", "350ms", "4.2s",
// "42s", "3m07s", "2h05m", "3d04h". It rounds once, up front, so 59.6 s
// reads "1m00s", never "60s".
func humanSeconds(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "–"
	case sec <= 0:
		return "0s"
	case sec < 0.9995:
		return strconv.FormatInt(max(1, int64(math.Round(sec*1000))), 10) + "ms"
	case sec < 9.95:
		return strconv.FormatFloat(sec, 'f', 1, 64) + "s"
	}
	whole := int64(math.Round(sec))
	if whole < 60 {
		return strconv.FormatInt(whole, 10) + "s"
	}
	m := whole / 60
	if m < 60 {
		return fmt.Sprintf("%dm%02ds", m, whole%60)
	}
	h := m / 60
	if h < 48 {
		return fmt.Sprintf("%dh%02dm", h, m%60)
	}
	return fmt.Sprintf("%dd%02dh", h/24, h%24)
}

// humanCount shows a count with a unit past ten thousand: "9999", "12.3k",
// "4.5M", "1.2G".
func humanCount(n float64) string {
	a := math.Abs(n)
	switch {
	case a < 1e4:
		return strconv.FormatFloat(n, 'f', 0, 64)
	case a < 1e6:
		return strconv.FormatFloat(n/1e3, 'f', 1, 64) + "k"
	case a < 1e9:
		return strconv.FormatFloat(n/1e6, 'f', 1, 64) + "M"
	}
	return strconv.FormatFloat(n/1e9, 'f', 1, 64) + "G"
}

// humanRate is a per-second rate: "0/s", "3.5/s", "12.3k/s".
func humanRate(perSecond float64) string {
	if perSecond < 100 && perSecond != math.Trunc(perSecond) {
		return strconv.FormatFloat(perSecond, 'f', 1, 64) + "/s"
	}
	return humanCount(perSecond) + "/s"
}

// humanBytes shows a size in binary units: "512B", "1.5KiB", "3.2GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + units[i]
}
