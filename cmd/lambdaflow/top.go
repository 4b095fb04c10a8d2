package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
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
		renderTop(&buf, c.Base(), prev, cur)
		if _, err := std.out.Write(buf.Bytes()); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

// top samples the HTTP API of one process.
type top struct {
	c   *client.Client
	now func() time.Time
}

// topSample is the process's state at one moment. Parts the process does
// not run (no batch layer, no sinks) are nil.
type topSample struct {
	at    time.Time
	ready string
	stats *api.Stats
	jobs  []api.JobStatus
	sinks []api.SinkStatus
}

func (t *top) sample(ctx context.Context) (*topSample, error) {
	s := &topSample{at: t.now()}
	var err error
	if s.stats, err = t.c.Stats(ctx); err != nil {
		return nil, err
	}
	jobs, err := t.c.Jobs(ctx)
	if here, err := optionalPart(err); err != nil {
		return nil, err
	} else if here {
		s.jobs = append([]api.JobStatus{}, jobs...)
	}
	sk, err := t.c.Sinks(ctx)
	if here, err := optionalPart(err); err != nil {
		return nil, err
	} else if here {
		s.sinks = append([]api.SinkStatus{}, sk...)
	}
	s.ready = readiness(ctx, t.c)
	return s, nil
}

// readiness summarises /readyz: "ready", or "not ready: " and the parts
// that are down.
func readiness(ctx context.Context, c *client.Client) string {
	h, err := c.Ready(ctx)
	switch {
	case err != nil:
		return "readiness unknown: " + err.Error()
	case h.Status == "ready":
		return h.Status
	}
	return "not ready: " + strings.Join(h.Parts, ", ")
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
	if client.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
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

func topicEnd(s *topSample, topic string) (float64, bool) {
	for _, t := range s.stats.Topics {
		if t.Name == topic {
			var sum int64
			for _, e := range t.EndOffsets {
				sum += e
			}
			return float64(sum), true
		}
	}
	return 0, false
}

func viewStats(s *topSample, view string) (api.ViewStats, bool) {
	for _, v := range s.stats.Views {
		if v.View == view {
			return v, true
		}
	}
	return api.ViewStats{}, false
}

func sinkStats(s *topSample, sink string) (api.SinkStats, bool) {
	for _, x := range s.stats.Sinks {
		if x.Sink == sink {
			return x, true
		}
	}
	return api.SinkStats{}, false
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
		for _, t := range cur.stats.Topics {
			ends := make([]string, len(t.EndOffsets))
			for i, e := range t.EndOffsets {
				ends[i] = strconv.FormatInt(e, 10)
			}
			r, ok := perSecond(prev, cur, func(s *topSample) (float64, bool) { return topicEnd(s, t.Name) })
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", t.Name, len(t.EndOffsets), t.Events, t.Bytes, rate(r, ok), strings.Join(ends, " "))
		}
	})

	lag := append([]api.Lag(nil), cur.stats.Consumers...)
	sort.SliceStable(lag, func(i, j int) bool { return worseLag(lag[i], lag[j]) })
	section("CONSUMER\tTOPIC\tPARTITION\tOFFSET\tEND OFFSET\tLAG\tLAG SECONDS\tREAD/S", func(tw io.Writer) {
		if len(lag) == 0 {
			fmt.Fprintln(tw, "(no consumers)")
		}
		for _, l := range lag {
			r, ok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
				for _, x := range s.stats.Consumers {
					if x.Consumer == l.Consumer && x.Topic == l.Topic && x.Partition == l.Partition {
						return float64(x.Offset), true
					}
				}
				return 0, false
			})
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.3f\t%s\n", l.Consumer, l.Topic, l.Partition, l.Offset, l.EndOffset, l.Lag, l.LagSeconds, rate(r, ok))
		}
	})

	if len(cur.stats.Views) > 0 {
		views := append([]api.ViewStats(nil), cur.stats.Views...)
		sort.Slice(views, func(i, j int) bool { return views[i].View < views[j].View })
		section("VIEW\tEVENTS\tEVENTS/S\tLATE EVENTS\tLATE/S\tOPEN WINDOWS", func(tw io.Writer) {
			for _, v := range views {
				er, eok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
					x, ok := viewStats(s, v.View)
					return float64(x.Events), ok
				})
				lr, lok := perSecond(prev, cur, func(s *topSample) (float64, bool) {
					x, ok := viewStats(s, v.View)
					return float64(x.LateEvents), ok
				})
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\n", v.View, v.Events, rate(er, eok), v.LateEvents, rate(lr, lok), v.OpenWindows)
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
				if j.State == api.JobRunning && j.ETASeconds > 0 {
					eta = time.Duration(j.ETASeconds * float64(time.Second)).Round(time.Second).String()
				}
				state := string(j.State)
				if j.Error != "" {
					state += ": " + oneLine(j.Error, 60)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f\t%s\n", j.ID, j.View, state, progressBar(j.Done, j.Total, j.State == api.JobSucceeded), j.Rows, j.RowsPerSecond, eta)
			}
		})
	}

	if cur.sinks != nil {
		section("SINK\tTYPE\tHEALTH\tWRITTEN\tWRITTEN/S\tRETRIES\tDEAD LETTERS\tERROR", func(tw io.Writer) {
			if len(cur.sinks) == 0 {
				fmt.Fprintln(tw, "(no sinks)")
			}
			for _, s := range cur.sinks {
				st, _ := sinkStats(cur, s.Name)
				wr, ok := perSecond(prev, cur, func(x *topSample) (float64, bool) {
					y, ok := sinkStats(x, s.Name)
					return float64(y.Rows), ok
				})
				health := "healthy"
				if !s.Healthy {
					health = "FAILING"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", s.Name, s.Type, health, st.Rows, rate(wr, ok), st.Retries, st.DeadLetters, oneLine(s.Error, 70))
			}
		})
	}
}

// worseLag orders lag worst first: the oldest unconsumed event, then the
// most events behind, then by name so the order holds between snapshots.
func worseLag(a, b api.Lag) bool {
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
