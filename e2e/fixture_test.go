package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

const (
	seedTopic  = "metrics"
	seedView   = "cpu_by_region"
	partitions = 4
	// stuckSink can never reach its database (testdata/pipeline.yaml).
	stuckSink = "sink.archive"
)

// event is one seeded event, with what the test expects of it.
type event struct {
	ID     string
	TS     time.Time
	Host   string
	Region string
	CPU    float64
	Bytes  int64
}

func (e event) json() map[string]any {
	return map[string]any{"id": e.ID, "ts": e.TS.Format(time.RFC3339), "host": e.Host, "region": e.Region, "cpu": e.CPU, "bytes": e.Bytes}
}

// partition is the documented partitioner: FNV-1a 32 of the key's text
// modulo the partition count.
func (e event) partition() int {
	h := fnv.New32a()
	h.Write([]byte(e.Host))
	return int(h.Sum32() % partitions)
}

// fixture is what the shared process was seeded with and which layers it
// runs.
type fixture struct {
	base     time.Time // first window start
	seededAt time.Time // just before the events were posted
	events   []event
	// offsets[i] is the partition and offset ingest answered for events[i].
	offsets [][2]int64
	// Layers found running: consumers in /v1/lag, /v1/jobs, /v1/sinks.
	speed, lake, sinks, batch bool
}

// newEvents makes 6 one-minute windows × 4 hosts, a few minutes ago, in
// two regions; every value differs so that a mix-up shows.
func newEvents(now time.Time) (time.Time, []event) {
	base := now.UTC().Truncate(time.Minute).Add(-8 * time.Minute)
	var evs []event
	for m := 0; m < 6; m++ {
		for h := 1; h <= 4; h++ {
			region := "eu"
			if h > 2 {
				region = "us"
			}
			evs = append(evs, event{
				ID:     fmt.Sprintf("e2e-%d-%d", m, h),
				TS:     base.Add(time.Duration(m)*time.Minute + time.Duration(h*7)*time.Second),
				Host:   fmt.Sprintf("web-%d", h),
				Region: region,
				CPU:    math.Round((0.1*float64(h)+0.01*float64(m))*1000) / 1000,
				Bytes:  int64(100*h + m),
			})
		}
	}
	return base, evs
}

// seed posts the events to the shared process and waits until every layer
// that runs has consumed them.
func seed(p *process) (*fixture, error) {
	f := &fixture{}
	f.base, f.events = newEvents(time.Now())
	f.seededAt = time.Now().UTC()
	var body bytes.Buffer
	for _, e := range f.events {
		b, _ := json.Marshal(e.json())
		body.Write(b)
		body.WriteByte('\n')
	}
	ans, err := p.api.Publish(bg, seedTopic, body.Bytes(), "application/x-ndjson", "")
	if err != nil {
		return nil, fmt.Errorf("seed: POST: %w", err)
	}
	if ans.Accepted != len(f.events) || len(ans.Results) != len(f.events) {
		return nil, fmt.Errorf("seed: accepted %d of %d: %+v", ans.Accepted, len(f.events), ans)
	}
	for _, r := range ans.Results {
		f.offsets = append(f.offsets, [2]int64{int64(r.Partition), r.Offset})
	}

	if _, err := p.api.Jobs(bg); err == nil {
		f.batch = true
	} else if !client.IsNotFound(err) {
		return nil, err
	}
	if _, err := p.api.Sinks(bg); err == nil {
		f.sinks = true
	} else if !client.IsNotFound(err) {
		return nil, err
	}

	// Consumed: every consumer but the stuck sink at the log end. Consumers
	// register when their layer starts, so give them a moment to appear.
	err = testenv.Poll(context.Background(), 90*time.Second, 250*time.Millisecond, func() error {
		var err error
		f.speed, f.lake, err = caughtUp(p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("seed: consumers did not catch up: %w", err)
	}
	if f.speed {
		// The speed layer commits its offsets with its checkpoint, after
		// the rows are in the store; check the rows too.
		err = testenv.Poll(context.Background(), 30*time.Second, 250*time.Millisecond, func() error {
			v, err := p.view(nil)
			if err != nil {
				return err
			}
			if len(v.Rows) != len(f.windows()) {
				return fmt.Errorf("view has %d rows, want %d", len(v.Rows), len(f.windows()))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}
	return f, nil
}

// caughtUp reports an error while a consumer other than the stuck sink is
// behind, and which layers have consumers.
func caughtUp(p *process) (speed, lake bool, err error) {
	lag, err := p.api.Lag(bg)
	if err != nil {
		return false, false, err
	}
	for _, l := range lag {
		speed = speed || strings.HasPrefix(l.Consumer, "speed.")
		lake = lake || l.Consumer == "lake"
		if l.Topic == seedTopic && l.Consumer != stuckSink && l.Lag != 0 {
			return speed, lake, fmt.Errorf("%s on %s/%d: lag %d", l.Consumer, l.Topic, l.Partition, l.Lag)
		}
	}
	return speed, lake, nil
}

// waitConsumed waits until every consumer but the stuck sink is at the end.
func waitConsumed(t *testing.T, p *process) {
	t.Helper()
	testenv.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		_, _, err := caughtUp(p)
		return err
	})
}

// endOffsets is each partition's expected end offset.
func (f *fixture) endOffsets() map[int]int64 {
	out := map[int]int64{}
	for p := 0; p < partitions; p++ {
		out[p] = 0
	}
	for _, e := range f.events {
		out[e.partition()]++
	}
	return out
}

// byPartition is the events of partition p in offset order (their order in
// the request, as the log keeps a partition's order).
func (f *fixture) byPartition(p int) []event {
	var out []event
	for _, e := range f.events {
		if e.partition() == p {
			out = append(out, e)
		}
	}
	return out
}

// window is the expected row of one window and region, computed here,
// independently of both layers.
type window struct {
	Start, End time.Time
	Region     string
	Events     int64
	AvgCPU     float64
	MaxCPU     float64
	P95CPU     float64
	Bytes      int64
	Hosts      int64
}

func (f *fixture) windows() []window { return windowsOf(f.events) }

// windowsOf computes the one-minute windows by region of events: count,
// avg, max and sum exactly, count_distinct of hosts, and the CPU quantile
// 0.95 at rank floor(0.95·(n−1)) of the sorted values, sorted by window
// and region.
func windowsOf(evs []event) []window {
	type key struct {
		start  time.Time
		region string
	}
	acc := map[key]*window{}
	hosts := map[key]map[string]bool{}
	cpus := map[key][]float64{}
	for _, e := range evs {
		k := key{e.TS.Truncate(time.Minute), e.Region}
		w := acc[k]
		if w == nil {
			w = &window{Start: k.start, End: k.start.Add(time.Minute), Region: e.Region, MaxCPU: math.Inf(-1)}
			acc[k] = w
			hosts[k] = map[string]bool{}
		}
		w.Events++
		w.AvgCPU += e.CPU
		w.MaxCPU = math.Max(w.MaxCPU, e.CPU)
		w.Bytes += e.Bytes
		hosts[k][e.Host] = true
		cpus[k] = append(cpus[k], e.CPU)
	}
	var out []window
	for k, w := range acc {
		w.AvgCPU /= float64(w.Events)
		w.Hosts = int64(len(hosts[k]))
		sorted := slices.Sorted(slices.Values(cpus[k]))
		w.P95CPU = sorted[int(0.95*float64(len(sorted)-1))]
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Region < out[j].Region
	})
	return out
}

// viewRow is a row of the seeded view: its columns, decoded strictly
// enough to compare.
type viewRow struct {
	WindowStart string  `json:"window_start"`
	WindowEnd   string  `json:"window_end"`
	Region      string  `json:"region"`
	Events      int64   `json:"events"`
	AvgCPU      float64 `json:"avg_cpu"`
	MaxCPU      float64 `json:"max_cpu"`
	Bytes       int64   `json:"bytes"`
	Hosts       int64   `json:"hosts"`
	Layer       string  `json:"layer"`
	Final       bool    `json:"final"`
}

// viewAnswer is the seeded view's answer with its rows decoded.
type viewAnswer struct {
	View    string
	Horizon *string
	Rows    []viewRow
}

// view queries the seeded view with parameters q (group-by fields, from,
// to).
func (p *process) view(q url.Values) (viewAnswer, error) {
	var rows []viewRow
	ans, err := p.api.QueryInto(bg, seedView, q, time.Time{}, time.Time{}, &rows)
	return viewAnswer{View: ans.View, Horizon: ans.Horizon, Rows: rows}, err
}

// postFresh publishes a few events of the current minute, after a batch run:
// their window lies past the horizon, so the view answers it from the speed
// layer. The fixture keeps them, so expectations stay exact.
func (f *fixture) postFresh(t *testing.T, p *process) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	var evs []event
	var body []map[string]any
	for h := 1; h <= 4; h++ {
		region := "eu"
		if h > 2 {
			region = "us"
		}
		e := event{ID: fmt.Sprintf("e2e-fresh-%d-%d", now.Unix(), h), TS: now.Add(-time.Duration(h) * time.Second), Host: fmt.Sprintf("web-%d", h),
			Region: region, CPU: 0.5 + 0.05*float64(h), Bytes: int64(1000 * h)}
		evs = append(evs, e)
		body = append(body, e.json())
	}
	p.post(t, seedTopic, body)
	f.events = append(f.events, evs...)
	// Every window's count, not only the number of rows: a window may
	// show some of the fresh events before the others (the speed layer
	// reads the partitions independently), and the callers compare what
	// they see at two moments.
	want := map[string]int64{}
	for _, w := range f.windows() {
		want[w.Start.UTC().Format(time.RFC3339)+" "+w.Region] = w.Events
	}
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		v, err := p.view(nil)
		if err != nil {
			return err
		}
		if len(v.Rows) != len(want) {
			return fmt.Errorf("view has %d rows, want %d after the fresh events", len(v.Rows), len(want))
		}
		for _, r := range v.Rows {
			if n := want[r.WindowStart+" "+r.Region]; r.Events != n {
				return fmt.Errorf("window %s %s has %d events, want %d after the fresh events", r.WindowStart, r.Region, r.Events, n)
			}
		}
		return nil
	})
}
