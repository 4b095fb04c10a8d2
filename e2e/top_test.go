package e2e

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// runTop runs `lambdaflow top` against p. Its output is a pipe, not a
// terminal, so it prints plain snapshots.
func runTop(t *testing.T, p *process, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"top", "--addr", p.url, "--token", p.token}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), `unknown command "top"`) {
			t.Skip(`"top" is not in cmd/lambdaflow/cli.go's command list yet`)
		}
		t.Fatalf("lambdaflow top %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// topSection returns the rows of the table whose header starts with head,
// each split into fields.
func topSection(out, head string) [][]string {
	var rows [][]string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, head):
			in = true
		case in && strings.TrimSpace(line) == "":
			return rows
		case in:
			rows = append(rows, strings.Fields(line))
		}
	}
	return rows
}

func TestTopShowsTheAPIsNumbers(t *testing.T) {
	p, f := sharedPipeline(t)
	waitConsumed(t, p)
	before := got(p.api.Lag(bg))(t)
	out := runTop(t, p, "--once")
	after := got(p.api.Lag(bg))(t)
	t.Logf("lambdaflow top --once:\n%s", out)
	if strings.Contains(out, "\x1b[") {
		t.Error("escape codes in the output, which is not a terminal")
	}
	if strings.Count(out, "lambdaflow top ") != 1 {
		t.Errorf("--once printed %d snapshots", strings.Count(out, "lambdaflow top "))
	}

	// The log: events and end offsets per partition, exactly; sizes in
	// human units.
	topics := got(p.api.Topics(bg))(t)
	shownTopics := map[string][]string{}
	for _, r := range topSection(out, "TOPIC ") {
		shownTopics[r[0]] = r
	}
	for _, tp := range topics {
		r := shownTopics[tp.Name]
		want := []string{tp.Name, strconv.Itoa(len(tp.Partitions)), humanCount(tp.Events), humanBytes(tp.Bytes), "–"}
		for _, pt := range tp.Partitions {
			want = append(want, strconv.FormatInt(pt.EndOffset, 10))
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("topic row %v, want %v", r, want)
		}
	}

	// Lag: every consumer and partition with the API's exact positions,
	// worst read lag first; ages as durations. Positions do not move
	// (everything is consumed but by the stuck sink); the stuck sink's age
	// grows by the second.
	if !reflect.DeepEqual(positions(before), positions(after)) {
		t.Fatalf("positions moved while top ran: %v then %v", before, after)
	}
	rows := topSection(out, "CONSUMER ")
	if len(after) == 0 {
		if len(rows) != 1 || rows[0][0] != "(no" {
			t.Errorf("no consumers, but top shows %v", rows)
		}
		t.Skip("no consumers in /v1/lag: the layers are not wired into `lambdaflow run` yet")
	}
	if len(rows) != len(after) {
		t.Errorf("top shows %d lag rows, the API %d", len(rows), len(after))
	}
	byKey := map[string]api.Lag{}
	for _, l := range after {
		byKey[fmt.Sprintf("%s %s %d", l.Consumer, l.Topic, l.Partition)] = l
	}
	prev := math.Inf(1)
	for _, r := range rows {
		if len(r) != 12 {
			t.Errorf("lag row %v: want 12 fields", r)
			continue
		}
		k := strings.Join(r[:3], " ")
		l, ok := byKey[k]
		if !ok {
			t.Errorf("lag row %v is not in /v1/lag", r)
			continue
		}
		wantExact := []string{strconv.FormatInt(l.Offset, 10), strconv.FormatInt(l.EndOffset, 10), strconv.FormatInt(l.Lag, 10)}
		if !reflect.DeepEqual(r[3:6], wantExact) {
			t.Errorf("%s: offset, end offset, lag = %v, the API says %v", k, r[3:6], wantExact)
		}
		if want := []string{strconv.FormatInt(l.ReadOffset, 10), strconv.FormatInt(l.ReadLag, 10)}; !reflect.DeepEqual(r[7:9], want) {
			t.Errorf("%s: read offset, read lag = %v, the API says %v", k, r[7:9], want)
		}
		for _, c := range []struct {
			name, text string
			api        float64
		}{{"lag time", r[6], l.LagSeconds}, {"read lag time", r[9], l.ReadLagSeconds}, {"event-time lag", r[11], l.EventTimeLagSeconds}} {
			secs, err := parseHuman(c.text)
			if err != nil || math.Abs(secs-c.api) > 3+c.api/100 || (c.api == 0) != (c.text == "0s") {
				t.Errorf("%s: %s %q (%v), the API says %.3f s", k, c.name, c.text, err, c.api)
			}
		}
		if l.ReadLagSeconds > prev+3 {
			t.Errorf("%s (read lag %.1f s) comes after a smaller read lag: not worst first", k, l.ReadLagSeconds)
		}
		prev = l.ReadLagSeconds
	}
	if f.sinks {
		if rows[0][0] != stuckSink || rows[0][5] == "0" {
			t.Errorf("worst lag row %v, want %s with its whole partition behind", rows[0], stuckSink)
		}
		sinks := map[string]string{}
		for _, r := range topSection(out, "SINK ") {
			sinks[r[0]] = r[2]
		}
		if sinks["warehouse"] != "healthy" || sinks["archive"] != "FAILING" {
			t.Errorf("sink health %v, want warehouse healthy and archive FAILING", sinks)
		}
	}
	if f.batch && len(topSection(out, "JOB ")) == 0 {
		t.Error("no batch jobs table though the batch layer runs")
	}
	if f.speed {
		views := topSection(out, "VIEW ")
		if len(views) != 1 || views[0][0] != seedView {
			t.Errorf("views table %v, want %s", views, seedView)
		}
	}
}

func TestTopRefreshes(t *testing.T) {
	p, _ := sharedPipeline(t)
	start := time.Now()
	out := runTop(t, p, "-n", "3", "--interval", "200ms")
	if n := strings.Count(out, "lambdaflow top "); n != 3 {
		t.Fatalf("-n 3 printed %d snapshots:\n%s", n, out)
	}
	if time.Since(start) < 400*time.Millisecond {
		t.Errorf("3 snapshots 200ms apart took %s", time.Since(start))
	}
	// From the second snapshot on, rates are numbers.
	last := out[strings.LastIndex(out, "lambdaflow top "):]
	for _, r := range topSection(last, "TOPIC ") {
		if n, ok := strings.CutSuffix(r[4], "/s"); !ok || n == "" || n == "–" {
			t.Errorf("topic row %v: rate %q is not a rate in a later snapshot", r, r[4])
		}
	}
}

// positions is the lag without its ages, which grow while nothing moves.
func positions(lag []api.Lag) []string {
	var out []string
	for _, l := range lag {
		out = append(out, fmt.Sprintf("%s/%s/%d %d %d %d", l.Consumer, l.Topic, l.Partition, l.Offset, l.EndOffset, l.Lag))
	}
	return out
}

// The units top shows, written here again so that the test checks them
// independently: counts plain below ten thousand, sizes in binary units,
// durations in one word ("0s", "350ms", "4.2s", "42s", "3m07s", "2h05m",
// "3d04h").
func humanCount(n int64) string {
	if n < 10000 {
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
}

func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, units := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB"} {
		if f < 1024 {
			break
		}
		f, units = f/1024, u
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + units
}

var humanDuration = regexp.MustCompile(`^(?:(\d+)ms|(\d+(?:\.\d)?)s|(\d+)m(\d\d)s|(\d+)h(\d\d)m|(\d+)d(\d\d)h)$`)

// parseHuman reads a duration top shows back into seconds.
func parseHuman(s string) (float64, error) {
	m := humanDuration.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	n := func(i int) float64 { f, _ := strconv.ParseFloat(m[i], 64); return f }
	switch {
	case m[1] != "":
		return n(1) / 1000, nil
	case m[2] != "":
		return n(2), nil
	case m[3] != "":
		return n(3)*60 + n(4), nil
	case m[5] != "":
		return n(5)*3600 + n(6)*60, nil
	}
	return n(7)*86400 + n(8)*3600, nil
}
