package e2e

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"reflect"
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

	// The log: events and end offsets per partition, exactly.
	topics := got(p.api.Topics(bg))(t)
	shownTopics := map[string][]string{}
	for _, r := range topSection(out, "TOPIC ") {
		shownTopics[r[0]] = r
	}
	for _, tp := range topics {
		r := shownTopics[tp.Name]
		want := []string{tp.Name, strconv.Itoa(len(tp.Partitions)), strconv.FormatInt(tp.Events, 10), strconv.FormatInt(tp.Bytes, 10), "–"}
		for _, pt := range tp.Partitions {
			want = append(want, strconv.FormatInt(pt.EndOffset, 10))
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("topic row %v, want %v", r, want)
		}
	}

	// Lag: every consumer and partition with the API's exact numbers, worst
	// first. Positions do not move (everything is consumed but by the stuck
	// sink); the stuck sink's age grows by the second.
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
	prevSeconds := math.Inf(1)
	for _, r := range rows {
		if len(r) != 8 {
			t.Errorf("lag row %v: want 8 fields", r)
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
		secs, err := strconv.ParseFloat(r[6], 64)
		if err != nil || math.Abs(secs-l.LagSeconds) > 3 || (l.LagSeconds == 0 && r[6] != "0.000") {
			t.Errorf("%s: lag seconds %s, the API says %.3f", k, r[6], l.LagSeconds)
		}
		if secs > prevSeconds {
			t.Errorf("%s (%.3f s) comes after a smaller lag: not worst first", k, secs)
		}
		prevSeconds = secs
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
		if _, err := strconv.ParseFloat(r[4], 64); err != nil {
			t.Errorf("topic row %v: rate %q is not a number in a later snapshot", r, r[4])
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
