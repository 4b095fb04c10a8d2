package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lambdaflow/lambdaflow/batch"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// topCmd shows the live numbers of a running process in a terminal: ingest
// rate per topic, end offsets, consumer lag worst first, late events, batch
// jobs and sink health. On a terminal it redraws in place every interval;
// otherwise it prints plain snapshots, so it can be logged or tested.
func topCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("top", "[-n N] [--once] [--interval D]", std)
	conn := clientFlags(fs, env)
	n := fs.Int("n", 0, "stop after N snapshots (0: until interrupted)")
	once := fs.Bool("once", false, "print one snapshot and exit (rates need two: they show as –)")
	interval := fs.Duration("interval", time.Second, "time between snapshots")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *once {
		*n = 1
	}
	if *n < 0 || *interval <= 0 {
		return fmt.Errorf("%w: -n must be ≥ 0 and --interval > 0", errUsage)
	}
	c := conn()
	term := isTerminal(std.out)
	t := &top{c: c, now: time.Now}
	var prev *topSample
	for i := 0; *n == 0 || i < *n; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(*interval):
			}
		}
		cur, err := t.sample(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var buf bytes.Buffer
		if term {
			// Home, then clear below: the frame is drawn over the last one
			// without a blank flash.
			buf.WriteString("\x1b[H\x1b[2J")
		} else if i > 0 {
			buf.WriteByte('\n')
		}
		renderTop(&buf, c.base, prev, cur)
		if _, err := std.out.Write(buf.Bytes()); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

// top samples the HTTP API of one process.
type top struct {
	c   *client
	now func() time.Time
}

// topSample is the process's state at one moment. Parts the process does
// not run (no batch layer, no sinks) are nil.
type topSample struct {
	at      time.Time
	ready   string
	topics  []broker.TopicInfo
	lag     []broker.Lag
	jobs    []batch.JobStatus
	sinks   []sinks.SinkStatus
	metrics map[string]*dto.MetricFamily
}

func (t *top) sample(ctx context.Context) (*topSample, error) {
	s := &topSample{at: t.now()}
	var topics struct {
		Topics []broker.TopicInfo `json:"topics"`
	}
	if err := t.c.getJSON(ctx, "/v1/topics", nil, &topics); err != nil {
		return nil, err
	}
	s.topics = topics.Topics
	var lag struct {
		Consumers []broker.Lag `json:"consumers"`
	}
	if err := t.c.getJSON(ctx, "/v1/lag", nil, &lag); err != nil {
		return nil, err
	}
	s.lag = lag.Consumers
	var jobs struct {
		Jobs []batch.JobStatus `json:"jobs"`
	}
	if here, err := optionalPart(t.c.getJSON(ctx, "/v1/jobs", nil, &jobs)); err != nil {
		return nil, err
	} else if here {
		s.jobs = append([]batch.JobStatus{}, jobs.Jobs...)
	}
	var sk struct {
		Sinks []sinks.SinkStatus `json:"sinks"`
	}
	if here, err := optionalPart(t.c.getJSON(ctx, "/v1/sinks", nil, &sk)); err != nil {
		return nil, err
	} else if here {
		s.sinks = append([]sinks.SinkStatus{}, sk.Sinks...)
	}
	// Metrics add late events and rates; without them top still shows the
	// log and the lag.
	s.metrics, _ = t.c.getMetrics(ctx)
	s.ready = t.c.readiness(ctx)
	return s, nil
}

// readiness summarises /readyz: "ready", or "not ready: " and the parts
// that are down.
func (c *client) readiness(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return "readiness unknown: " + err.Error()
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "readiness unknown: " + err.Error()
	}
	defer resp.Body.Close()
	var ans struct {
		Status string   `json:"status"`
		Parts  []string `json:"parts"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans); err != nil {
		return fmt.Sprintf("readiness unknown: %d", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusOK {
		return ans.Status
	}
	return "not ready: " + strings.Join(ans.Parts, ", ")
}

// oneLine makes an error message fit a table cell: one line, at most n runes.
func oneLine(msg string, n int) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return msg
}

// optionalPart tells a part the process does not run (404: here is false)
// from a failure.
func optionalPart(err error) (here bool, _ error) {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// getMetrics reads and parses /metrics.
func (c *client) getMetrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &apiError{Status: resp.StatusCode, Message: "GET /metrics"}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return mfs, nil
}

// metricSum sums the samples of a counter or gauge family whose labels
// include want.
func metricSum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		if !labelsMatch(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, true
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// perSecond is how fast value grew between two samples; ok is false
// without a previous sample.
func perSecond(prev, cur *topSample, value func(*topSample) (float64, bool)) (float64, bool) {
	if prev == nil {
		return 0, false
	}
	a, ok1 := value(prev)
	b, ok2 := value(cur)
	dt := cur.at.Sub(prev.at).Seconds()
	if !ok1 || !ok2 || dt <= 0 {
		return 0, false
	}
	return max(0, (b-a)/dt), true
}

func topicEnd(s *topSample, topic string, partition int) (float64, bool) {
	for _, t := range s.topics {
		if t.Name != topic {
			continue
		}
		sum := int64(0)
		for _, p := range t.Partitions {
			if partition < 0 || p.Partition == partition {
				sum += p.EndOffset
			}
		}
		return float64(sum), true
	}
	return 0, false
}

// renderTop writes one snapshot. Rates need the previous snapshot and show
// as "–" on the first.
func renderTop(w io.Writer, addr string, prev, cur *topSample) {
	fmt.Fprintf(w, "lambdaflow top  %s  %s  %s\n", addr, cur.at.UTC().Format("2006-01-02 15:04:05Z"), cur.ready)
	rate := func(v float64, ok bool) string {
		if !ok {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	// Each table aligns its own columns.
	section := func(header string, rows func(tw io.Writer)) {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		rows(tw)
		tw.Flush()
	}

	section("TOPIC\tPARTITIONS\tEVENTS\tBYTES\tIN/S\tEND OFFSETS", func(tw io.Writer) {
		for _, t := range cur.topics {
			ends := make([]string, len(t.Partitions))
			for i, p := range t.Partitions {
				ends[i] = strconv.FormatInt(p.EndOffset, 10)
			}
			r, ok := perSecond(prev, cur, func(s *topSample) (float64, bool) { return topicEnd(s, t.Name, -1) })
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", t.Name, len(t.Partitions), t.Events, t.Bytes, rate(r, ok), strings.Join(ends, " "))
		}
	})

	lag := append([]broker.Lag(nil), cur.lag...)
	sort.SliceStable(lag, func(i, j int) bool { return worseLag(lag[i], lag[j]) })
	section("CONSUMER\tTOPIC\tPARTITION\tOFFSET\tEND OFFSET\tLAG\tLAG SECONDS\tREAD/S", func(tw io.Writer) {
		if len(lag) == 0 {
			fmt.Fprintln(tw, "(no consumers)")
		}
		for _, l := range lag {
			r, ok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
				for _, x := range s.lag {
					if x.Consumer == l.Consumer && x.Topic == l.Topic && x.Partition == l.Partition {
						return float64(x.Offset), true
					}
				}
				return 0, false
			})
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.3f\t%s\n", l.Consumer, l.Topic, l.Partition, l.Offset, l.EndOffset, l.Lag, l.LagSeconds, rate(r, ok))
		}
	})

	if mf := cur.metrics["lambdaflow_speed_events_total"]; mf != nil {
		section("VIEW\tEVENTS\tEVENTS/S\tLATE EVENTS\tLATE/S\tOPEN WINDOWS", func(tw io.Writer) {
			for _, view := range labelValues(mf, "view") {
				f := map[string]string{"view": view}
				events, _ := metricSum(cur.metrics, "lambdaflow_speed_events_total", f)
				late, _ := metricSum(cur.metrics, "lambdaflow_speed_late_events_total", f)
				open, _ := metricSum(cur.metrics, "lambdaflow_speed_state_windows", f)
				er, eok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
					return metricSum(s.metrics, "lambdaflow_speed_events_total", f)
				})
				lr, lok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
					return metricSum(s.metrics, "lambdaflow_speed_late_events_total", f)
				})
				fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.0f\t%s\t%.0f\n", view, events, rate(er, eok), late, rate(lr, lok), open)
			}
		})
	}

	if cur.jobs != nil {
		section("JOB\tVIEW\tSTATE\tPROGRESS\tROWS\tROWS/S\tETA", func(tw io.Writer) {
			if len(cur.jobs) == 0 {
				fmt.Fprintln(tw, "(no batch jobs yet)")
			}
			for i, j := range cur.jobs {
				if i == 5 {
					fmt.Fprintf(tw, "(%d older jobs)\n", len(cur.jobs)-5)
					break
				}
				eta := "–"
				if j.State == batch.JobRunning && j.ETASeconds > 0 {
					eta = time.Duration(j.ETASeconds * float64(time.Second)).Round(time.Second).String()
				}
				state := string(j.State)
				if j.Error != "" {
					state += ": " + oneLine(j.Error, 60)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f\t%s\n", j.ID, j.View, state, progressBar(j.Done, j.Total, j.State == batch.JobSucceeded), j.Rows, j.RowsPerSecond, eta)
			}
		})
	}

	if cur.sinks != nil {
		section("SINK\tTYPE\tHEALTH\tWRITTEN\tWRITTEN/S\tRETRIES\tDEAD LETTERS\tERROR", func(tw io.Writer) {
			if len(cur.sinks) == 0 {
				fmt.Fprintln(tw, "(no sinks)")
			}
			for _, s := range cur.sinks {
				f := map[string]string{"sink": s.Name}
				written, _ := metricSum(cur.metrics, "lambdaflow_sink_rows_written_total", f)
				retries, _ := metricSum(cur.metrics, "lambdaflow_sink_retries_total", f)
				dead, _ := metricSum(cur.metrics, "lambdaflow_sink_dead_letters_total", f)
				wr, ok := perSecond(prev, cur, func(x *topSample) (float64, bool) {
					return metricSum(x.metrics, "lambdaflow_sink_rows_written_total", f)
				})
				health := "healthy"
				if !s.Healthy {
					health = "FAILING"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%.0f\t%.0f\t%s\n", s.Name, s.Type, health, written, rate(wr, ok), retries, dead, oneLine(s.Error, 70))
			}
		})
	}
}

// worseLag orders lag worst first: the oldest unconsumed event, then the
// most events behind, then by name so the order holds between snapshots.
func worseLag(a, b broker.Lag) bool {
	if a.LagSeconds != b.LagSeconds {
		return a.LagSeconds > b.LagSeconds
	}
	if a.Lag != b.Lag {
		return a.Lag > b.Lag
	}
	if a.Consumer != b.Consumer {
		return a.Consumer < b.Consumer
	}
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

// labelValues lists the distinct values of label in a family, sorted.
func labelValues(mf *dto.MetricFamily, label string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && !seen[lp.GetValue()] {
				seen[lp.GetValue()] = true
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

// progressBar draws done/total as "[#####-----] 5/10".
func progressBar(done, total int, finished bool) string {
	const width = 10
	filled := 0
	switch {
	case total > 0:
		filled = min(width, done*width/total)
	case finished:
		filled = width
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "] " + strconv.Itoa(done) + "/" + strconv.Itoa(total)
}
