package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// roundResult is what one round measured.
type roundResult struct {
	publish, catchUp    time.Duration
	lakeState                     // at catch-up
	compacted           lakeState // once compaction is done
	compactWait         time.Duration
	rssCaughtUp, rssEnd int64   // bytes
	cpuCaughtUp         float64 // the process's CPU seconds, publish + catch-up
	otherAppends        int64   // log entries appended to topics other than the source's, at catch-up
	recompute           []recomputeResult
}

// lakeState is what the lake directory holds at one moment.
type lakeState struct {
	files           int
	lakeBytes       int64
	manifestBytes   int64
	manifestVersion int64
}

type recomputeResult struct {
	view string
	took time.Duration
	rows int64
}

// waitLake polls GET /v1/lag until the lake writer's position on every
// partition of topic reaches the end of the log and the positions add up
// to events (the lake writer commits a position only after the manifest
// holds everything below it).
func waitLake(ctx context.Context, s *measure.Server, topic string, partitions int, events int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var lag struct {
			Consumers []struct {
				Consumer  string `json:"consumer"`
				Topic     string `json:"topic"`
				Partition int    `json:"partition"`
				Offset    int64  `json:"offset"`
				End       int64  `json:"end_offset"`
			} `json:"consumers"`
		}
		// A busy server may answer 503 for a moment: poll on until the
		// deadline, and report the last error if it passes.
		lastErr := s.GetJSON(ctx, "/v1/lag", &lag)
		var sum int64
		parts := 0
		for _, c := range lag.Consumers {
			if c.Consumer == "lake" && c.Topic == topic && c.Offset == c.End {
				sum += c.Offset
				parts++
			}
		}
		if parts == partitions && sum == events {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lake has not caught up after %s (%d of %d partitions at the end, %d of %d events; last error: %v)", timeout, parts, partitions, sum, events, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// appendsBeside sums lambdaflow_log_appends_total over every topic but
// topic: the entries the speed layer appended (partial states and view
// rows), each a write and an fsync of the log.
func appendsBeside(ctx context.Context, s *measure.Server, topic string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var n int64
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "lambdaflow_log_appends_total{") || strings.Contains(line, `topic="`+topic+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("GET /metrics: %q: %w", strings.TrimSpace(line), err)
		}
		n += int64(v)
	}
	return n, nil
}

// waitCompaction polls the lake until compaction is done: the files stay
// the same for settle (or timeout passes), and returns that state and how
// long it took.
func waitCompaction(ctx context.Context, st lakestore.Store, settle, timeout time.Duration) (lakeState, time.Duration, error) {
	start := time.Now()
	var last lakeState
	stable := time.Now()
	for {
		var now lakeState
		listed := time.Now()
		if err := lakeStats(ctx, st, "flights", &now); err != nil {
			return now, 0, err
		}
		// Listing a large lake on object storage takes the server's CPU
		// from compaction: poll no more than a fifth of the time.
		wait := max(250*time.Millisecond, 4*time.Since(listed))
		if now.files != last.files || now.lakeBytes != last.lakeBytes {
			last, stable = now, time.Now()
		}
		if time.Since(stable) >= settle || time.Since(start) >= timeout {
			return last, stable.Sub(start), nil
		}
		select {
		case <-ctx.Done():
			return last, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// recompute starts a batch recompute of view over [from, to) and waits for
// it; the time is the job's own (started → finished).
func recompute(ctx context.Context, s *measure.Server, view string, from, to time.Time) (recomputeResult, error) {
	q := fmt.Sprintf("/v1/views/%s/recompute?from=%s&to=%s", view, from.Format(time.RFC3339), to.Format(time.RFC3339))
	resp, err := http.Post(s.URL+q, "application/json", nil)
	if err != nil {
		return recomputeResult{}, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return recomputeResult{}, fmt.Errorf("POST %s: %d %s", q, resp.StatusCode, body)
	}
	var started struct {
		Job string `json:"job"`
	}
	if err := json.Unmarshal(body, &started); err != nil {
		return recomputeResult{}, err
	}
	for {
		var st struct {
			State      string     `json:"state"`
			Rows       int64      `json:"rows"`
			Error      string     `json:"error"`
			StartedAt  *time.Time `json:"started_at"`
			FinishedAt *time.Time `json:"finished_at"`
		}
		if err := s.GetJSON(ctx, "/v1/jobs/"+started.Job, &st); err != nil {
			return recomputeResult{}, err
		}
		switch st.State {
		case "succeeded":
			return recomputeResult{view: view, took: st.FinishedAt.Sub(*st.StartedAt), rows: st.Rows}, nil
		case "failed":
			return recomputeResult{}, fmt.Errorf("recompute of %s failed: %s", view, st.Error)
		}
		select {
		case <-ctx.Done():
			return recomputeResult{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runRound is one backfill into a fresh data directory.
func runRound(ctx context.Context, o options, bin, pipeline, oracle, input string, lines []string, want map[string]*oracleView, dir string, lake lakeAt, round int) (*roundResult, error) {
	dataDir := filepath.Join(dir, "data")
	s, err := measure.StartServer(ctx, measure.ServerConfig{Bin: bin, Pipeline: pipeline, Dir: dir, Roles: o.roles,
		Env: append([]string{"BACKFILL_DATA=" + dataDir}, lake.roundEnv(round)...)})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	res := &roundResult{}
	start := time.Now()
	if err := measure.Publish(ctx, s.URL+"/v1/topics/flights/events", lines, o.clients, o.body); err != nil {
		return nil, err
	}
	res.publish = time.Since(start)
	measure.Logf(os.Stderr, "published %d events in %.1f s; waiting for the lake", len(lines), res.publish.Seconds())
	answered := time.Now()
	if err := waitLake(ctx, s, "flights", 8, int64(len(lines)), o.catchUp); err != nil {
		return nil, err
	}
	res.catchUp = time.Since(answered)
	if res.rssCaughtUp, err = s.PeakRSS(); err != nil {
		return nil, err
	}
	if res.cpuCaughtUp, err = s.CPUSeconds(); err != nil {
		return nil, err
	}
	if res.otherAppends, err = appendsBeside(ctx, s, "flights"); err != nil {
		return nil, err
	}
	st, err := lake.open(ctx, dataDir, round)
	if err != nil {
		return nil, err
	}
	defer lakestore.CloseIdle(st)
	if err := lakeStats(ctx, st, "flights", &res.lakeState); err != nil {
		return nil, err
	}
	measure.Logf(os.Stderr, "lake caught up %.1f s after the last answer: %d files, %.1f B/row, manifest log %.2f MiB (version %d), peak RSS %d MiB",
		res.catchUp.Seconds(), res.files, float64(res.lakeBytes)/float64(len(lines)), float64(res.manifestBytes)/(1<<20),
		res.manifestVersion, res.rssCaughtUp>>20)
	// Compaction goes on after the catch-up (closed periods merged).
	if res.compacted, res.compactWait, err = waitCompaction(ctx, st, 5*time.Second, 5*time.Minute); err != nil {
		return nil, err
	}
	measure.Logf(os.Stderr, "compaction done %.1f s after catch-up: %d files, %.1f B/row",
		res.compactWait.Seconds(), res.compacted.files, float64(res.compacted.lakeBytes)/float64(len(lines)))
	var views struct {
		Views []struct {
			Name string `json:"name"`
		} `json:"views"`
	}
	if err := s.GetJSON(ctx, "/v1/views", &views); err != nil {
		return nil, err
	}
	from, to := flightsEpoch, flightsEpoch.AddDate(1, 0, 0)
	for _, v := range views.Views {
		r, err := recompute(ctx, s, v.Name, from, to)
		if err != nil {
			return nil, err
		}
		// A job reads the lake up to the view's horizon (the lake's
		// event-time watermark less the view's lateness), so the last hours
		// of the year are not read: checkView checks the windows before it.
		measure.Logf(os.Stderr, "recompute %s: %.2f s, %d lake rows", v.Name, r.took.Seconds(), r.rows)
		res.recompute = append(res.recompute, r)
	}
	if res.rssEnd, err = s.PeakRSS(); err != nil {
		return nil, err
	}
	if len(res.recompute) != len(want) {
		return nil, fmt.Errorf("the server has %d views, the oracle %d", len(res.recompute), len(want))
	}
	for _, r := range res.recompute {
		if err := checkView(ctx, s, r.view, want[r.view], from, to); err != nil {
			return nil, err
		}
	}
	stopped = true
	if err := s.Stop(); err != nil {
		return nil, err
	}
	files, err := localLake(ctx, st, "flights", filepath.Join(dir, "lake-copy"))
	if err != nil {
		return nil, err
	}
	if err := checkLake(ctx, oracle, input, files, len(lines)); err != nil {
		return nil, err
	}
	measure.Logf(os.Stderr, "checks passed: the lake holds every event once with its values; every batch row of %d views equals the oracle", len(want))
	return res, nil
}
