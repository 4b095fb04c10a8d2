package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// oracleView is one view's expected rows, from oracle.py.
type oracleView struct {
	Size  int64             `json:"size"`  // window size, µs
	Group string            `json:"group"` // the group-by field
	Kinds map[string]string `json:"kinds"` // aggregate → exact | avg | distinct | sorted:q
	Rows  []struct {
		Start int64                      `json:"start"` // window start, UTC µs
		Group string                     `json:"group"`
		Aggs  map[string]json.RawMessage `json:"aggs"`
	} `json:"rows"`
}

func oracleViews(ctx context.Context, oracle, input string) (map[string]*oracleView, error) {
	out, err := measure.Command(ctx, "", nil, "python3", oracle, "views", input)
	if err != nil {
		return nil, err
	}
	var views map[string]*oracleView
	if err := json.Unmarshal([]byte(out), &views); err != nil {
		return nil, fmt.Errorf("oracle.py views: %w", err)
	}
	return views, nil
}

// checkLake has DuckDB compare the lake with the input: every event once,
// with every value.
func checkLake(ctx context.Context, oracle, input, lake string, events int) error {
	out, err := measure.Command(ctx, "", nil, "python3", oracle, "lake", input, filepath.Join(lake, "**", "*.parquet"))
	if err != nil {
		return err
	}
	var got struct{ Input, Rows, DistinctIDs, Missing, Extra, Changed int }
	dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(out, "distinct_ids", "distinctids")))
	if err := dec.Decode(&got); err != nil {
		return fmt.Errorf("oracle.py lake: %w", err)
	}
	if got.Input != events || got.Rows != events || got.DistinctIDs != events || got.Missing != 0 || got.Extra != 0 || got.Changed != 0 {
		return fmt.Errorf("the lake does not hold the input exactly once: %s", strings.TrimSpace(out))
	}
	return nil
}

// checkView compares the view's batch rows (windows that end at or before
// the horizon) with the oracle: the same windows and groups, and equal
// aggregates within each kind's documented error.
func checkView(ctx context.Context, s *measure.Server, view string, want *oracleView, from, to time.Time) error {
	// from and to bound window starts; a window may start before the
	// first event (7-day windows are aligned to the Unix epoch, a Thursday).
	first := from.Add(-time.Duration(want.Size) * time.Microsecond)
	q := url.Values{"from": {first.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	var resp struct {
		Horizon *time.Time                   `json:"horizon"`
		Rows    []map[string]json.RawMessage `json:"rows"`
	}
	if err := s.GetJSON(ctx, "/v1/views/"+view+"?"+q.Encode(), &resp); err != nil {
		return err
	}
	if resp.Horizon == nil {
		return fmt.Errorf("%s: no horizon after a recompute", view)
	}
	horizon := resp.Horizon.UnixMicro()
	type key struct {
		start int64
		group string
	}
	got := map[key]map[string]json.RawMessage{}
	for _, r := range resp.Rows {
		var start time.Time
		var layer, group string
		if err := unmarshal(r["window_start"], &start); err != nil {
			return fmt.Errorf("%s: window_start: %w", view, err)
		}
		if err := unmarshal(r["layer"], &layer); err != nil {
			return fmt.Errorf("%s: layer: %w", view, err)
		}
		if err := unmarshal(r[want.Group], &group); err != nil {
			return fmt.Errorf("%s: %s: %w", view, want.Group, err)
		}
		k := key{start.UnixMicro(), group}
		if k.start+want.Size > horizon {
			continue // after the horizon: the speed layer's
		}
		if layer != "batch" {
			return fmt.Errorf("%s: window %s %s ends before the horizon %s but comes from the %s layer", view, start.Format(time.RFC3339), group, resp.Horizon.Format(time.RFC3339), layer)
		}
		got[k] = r
	}
	matched := 0
	for _, w := range want.Rows {
		if w.Start+want.Size > horizon {
			continue
		}
		k := key{w.Start, w.Group}
		r, ok := got[k]
		if !ok {
			return fmt.Errorf("%s: window %s %s=%s missing", view, time.UnixMicro(w.Start).UTC().Format(time.RFC3339), want.Group, w.Group)
		}
		delete(got, k)
		for agg, kind := range want.Kinds {
			if err := compareAgg(kind, r[agg], w.Aggs[agg]); err != nil {
				return fmt.Errorf("%s: window %s %s=%s: %s: %w", view, time.UnixMicro(w.Start).UTC().Format(time.RFC3339), want.Group, w.Group, agg, err)
			}
		}
		matched++
	}
	for k := range got {
		return fmt.Errorf("%s: window %s %s=%s is not in the oracle", view, time.UnixMicro(k.start).UTC().Format(time.RFC3339), want.Group, k.group)
	}
	if matched < len(want.Rows)*9/10 {
		return fmt.Errorf("%s: only %d of %d windows end before the horizon %s", view, matched, len(want.Rows), resp.Horizon.Format(time.RFC3339))
	}
	return nil
}

func unmarshal(raw json.RawMessage, v any) error {
	if raw == nil {
		return fmt.Errorf("missing")
	}
	return json.Unmarshal(raw, v)
}

// compareAgg checks one aggregate: exact for counts, sums, min and max of
// integer-valued data; 1e-9 relative for averages; 2% for distinct counts
// (HyperLogLog); for quantiles (DDSketch, 1% relative error), within 1% of
// a value whose rank is within one of q·(n−1).
func compareAgg(kind string, gotRaw, wantRaw json.RawMessage) error {
	got, gotNull, err := number(gotRaw)
	if err != nil {
		return err
	}
	if q, ok := strings.CutPrefix(kind, "sorted:"); ok {
		var vals []float64
		if !isNull(wantRaw) {
			if err := json.Unmarshal(wantRaw, &vals); err != nil {
				return err
			}
		}
		if len(vals) == 0 {
			if !gotNull {
				return fmt.Errorf("got %v, want null (no values)", got)
			}
			return nil
		}
		if gotNull {
			return fmt.Errorf("got null, want a quantile of %d values", len(vals))
		}
		var qf float64
		fmt.Sscan(q, &qf)
		r := qf * float64(len(vals)-1)
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := max(0, int(math.Floor(r))-1); i <= min(len(vals)-1, int(math.Ceil(r))+1); i++ {
			lo, hi = min(lo, vals[i]), max(hi, vals[i])
		}
		if got < lo-0.01*math.Abs(lo)-1e-9 || got > hi+0.01*math.Abs(hi)+1e-9 {
			return fmt.Errorf("got %v, want within 1%% of [%v, %v] (q=%s of %d values)", got, lo, hi, q, len(vals))
		}
		return nil
	}
	want, wantNull, err := number(wantRaw)
	if err != nil {
		return err
	}
	if gotNull || wantNull {
		if gotNull != wantNull {
			return fmt.Errorf("got %s, want %s", gotRaw, wantRaw)
		}
		return nil
	}
	tol := 0.0
	switch kind {
	case "avg":
		tol = 1e-9 * math.Abs(want)
	case "distinct":
		tol = 0.02 * want
	}
	if math.Abs(got-want) > tol+1e-9 {
		return fmt.Errorf("got %v, want %v (%s)", got, want, kind)
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return raw == nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func number(raw json.RawMessage) (float64, bool, error) {
	if isNull(raw) {
		return 0, true, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false, fmt.Errorf("%s is not a number: %w", raw, err)
	}
	return f, false, nil
}
