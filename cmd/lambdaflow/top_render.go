package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// lagOrder is how the consumers table is sorted; s cycles through them.
type lagOrder int

const (
	byReadLag      lagOrder = iota // worst read lag first, as the API orders
	byCommittedLag                 // worst committed lag first
	byName                         // consumer, topic, partition
)

var lagOrderNames = []string{"read", "committed", "name"}

func lagOrderNamed(s string) (lagOrder, bool) {
	i := slices.Index(lagOrderNames, s)
	return lagOrder(i), i >= 0
}

func (o lagOrder) next() lagOrder { return (o + 1) % lagOrder(len(lagOrderNames)) }

func (o lagOrder) String() string {
	return [...]string{"worst read lag first", "worst committed lag first", "by name"}[o]
}

// less orders two lag rows.
func (o lagOrder) less(a, b api.Lag) bool {
	key := func(l api.Lag) []float64 {
		switch o {
		case byCommittedLag:
			return []float64{-l.LagSeconds, -float64(l.Lag), -l.ReadLagSeconds}
		case byName:
			return nil
		}
		return []float64{-l.ReadLagSeconds, -l.LagSeconds, -float64(l.ReadLag)}
	}
	if c := slices.Compare(key(a), key(b)); c != 0 {
		return c < 0
	}
	if a.Consumer != b.Consumer {
		return a.Consumer < b.Consumer
	}
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

// frame renders the latest sample as lines. width and height cut it to a
// terminal (0: no limit); the consumers table gives up rows first, since it
// can be long, with a line saying how many are left out. interactive adds
// the keys' help.
func (t *top) frame(width, height int, interactive bool) []string {
	var head []string
	addr := t.c.Base()
	if len(t.samples) == 0 {
		head = append(head, "lambdaflow top  "+addr)
	} else {
		cur := t.samples[len(t.samples)-1]
		st := cur.stats
		up := ""
		if !st.Started.IsZero() {
			up = fmt.Sprintf("  up %s (counters since %s)", humanSeconds(st.Time.Sub(st.Started).Seconds()), st.Started.UTC().Format("2006-01-02 15:04Z"))
		}
		head = append(head, fmt.Sprintf("lambdaflow top  %s  %s  %s%s", addr, cur.at.UTC().Format("2006-01-02 15:04:05Z"), cur.ready, up))
	}
	if t.err != nil {
		shown := "no numbers yet"
		if len(t.samples) > 0 {
			shown = "showing " + t.samples[len(t.samples)-1].at.UTC().Format("15:04:05Z")
		}
		head = append(head, fmt.Sprintf("POLL FAILED at %s (%d in a row, %s; retrying): %s",
			t.errAt.UTC().Format("15:04:05Z"), t.fails, shown, errOneLine(t.err, 200)))
	}
	if interactive {
		head = append(head, "consumers "+t.order.String()+"  ·  s: sort  q: quit")
	}
	if len(t.samples) == 0 {
		return cut(head, width, height)
	}
	cur := t.samples[len(t.samples)-1]
	topics := t.topicsTable(cur)
	lag := t.lagTable(cur)
	var rest []string
	rest = append(rest, t.viewsTable(cur)...)
	rest = append(rest, t.jobsTable(cur)...)
	rest = append(rest, t.sinksTable(cur)...)

	if height > 0 {
		// The lag table's header and blank line stay; its rows share what
		// the other tables leave.
		room := height - len(head) - len(topics) - len(rest) - 2
		if rows := len(lag) - 2; rows > max(room, 1) {
			keep := max(room-1, 0)
			lag = append(lag[:2+keep:2+keep], fmt.Sprintf("(%d more consumers; a taller terminal shows them)", rows-keep))
		}
	}
	lines := append(head, topics...)
	lines = append(lines, lag...)
	lines = append(lines, rest...)
	return cut(lines, width, height)
}

// cut makes lines fit width columns and height lines (0: no limit).
func cut(lines []string, width, height int) []string {
	if height > 0 && len(lines) > height {
		lines = append(lines[:height-1:height-1], fmt.Sprintf("(%d more lines)", len(lines)-height+1))
	}
	if width > 0 {
		for i, l := range lines {
			if utf8.RuneCountInString(l) > width {
				r := []rune(l)
				lines[i] = string(r[:max(width-1, 0)]) + "…"
			}
		}
	}
	return lines
}

// table lays rows out in aligned columns under header, after a blank line.
func table(header string, rows [][]string) []string {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	out := []string{""}
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

// rateText is a smoothed rate, "–" until there are two samples.
func (t *top) rateText(value func(*topSample) (float64, bool)) string {
	r, ok := t.rate(value)
	if !ok {
		return "–"
	}
	return humanRate(r)
}

func (t *top) topicsTable(cur *topSample) []string {
	var rows [][]string
	for _, tp := range cur.stats.Topics {
		ends := make([]string, len(tp.EndOffsets))
		for i, e := range tp.EndOffsets {
			ends[i] = strconv.FormatInt(e, 10)
		}
		in := t.rateText(func(s *topSample) (float64, bool) { return topicEnd(s, tp.Name) })
		rows = append(rows, []string{tp.Name, strconv.Itoa(len(tp.EndOffsets)), humanCount(float64(tp.Events)), humanBytes(tp.Bytes), in, strings.Join(ends, " ")})
	}
	return table("TOPIC\tPARTITIONS\tEVENTS\tBYTES\tIN/S\tEND-OFFSETS", rows)
}

func (t *top) lagTable(cur *topSample) []string {
	lag := slices.Clone(cur.stats.Consumers)
	slices.SortStableFunc(lag, func(a, b api.Lag) int {
		switch {
		case t.order.less(a, b):
			return -1
		case t.order.less(b, a):
			return 1
		}
		return 0
	})
	var rows [][]string
	if len(lag) == 0 {
		rows = append(rows, []string{"(no consumers)"})
	}
	for _, l := range lag {
		read := t.rateText(func(s *topSample) (float64, bool) {
			for _, x := range s.stats.Consumers {
				if x.Consumer == l.Consumer && x.Topic == l.Topic && x.Partition == l.Partition {
					return float64(x.ReadOffset), true
				}
			}
			return 0, false
		})
		rows = append(rows, []string{l.Consumer, l.Topic, strconv.Itoa(l.Partition),
			strconv.FormatInt(l.Offset, 10), strconv.FormatInt(l.EndOffset, 10), strconv.FormatInt(l.Lag, 10), humanSeconds(l.LagSeconds),
			strconv.FormatInt(l.ReadOffset, 10), strconv.FormatInt(l.ReadLag, 10), humanSeconds(l.ReadLagSeconds),
			read, humanSeconds(l.EventTimeLagSeconds)})
	}
	return table("CONSUMER\tTOPIC\tPARTITION\tOFFSET\tEND-OFFSET\tLAG\tLAG-TIME\tREAD-OFFSET\tREAD-LAG\tREAD-LAG-TIME\tREAD/S\tEVENT-TIME-LAG", rows)
}

func (t *top) viewsTable(cur *topSample) []string {
	if len(cur.stats.Views) == 0 {
		return nil
	}
	views := slices.Clone(cur.stats.Views)
	slices.SortFunc(views, func(a, b api.ViewStats) int { return strings.Compare(a.View, b.View) })
	var rows [][]string
	for _, v := range views {
		er := t.rateText(func(s *topSample) (float64, bool) {
			x, ok := viewStats(s, v.View)
			return float64(x.Events), ok
		})
		lr := t.rateText(func(s *topSample) (float64, bool) {
			x, ok := viewStats(s, v.View)
			return float64(x.LateEvents), ok
		})
		wm := "–"
		if v.Watermark != nil {
			wm = shortTime(*v.Watermark, cur.at)
		}
		rows = append(rows, []string{v.View, humanCount(float64(v.Events)), er, humanCount(float64(v.LateEvents)), lr,
			humanCount(float64(v.OpenWindows)), wm, humanSeconds(v.CheckpointAgeSeconds), humanBytes(v.CheckpointBytes)})
	}
	return table("VIEW\tEVENTS\tEVENTS/S\tLATE\tLATE/S\tOPEN-WINDOWS\tWATERMARK\tCHECKPOINT-AGE\tCHECKPOINT-SIZE", rows)
}

func (t *top) jobsTable(cur *topSample) []string {
	if cur.jobs == nil {
		return nil
	}
	var rows [][]string
	if len(cur.jobs) == 0 {
		rows = append(rows, []string{"(no batch jobs yet)"})
	}
	for i, j := range cur.jobs {
		if i == 5 {
			rows = append(rows, []string{fmt.Sprintf("(%d older jobs)", len(cur.jobs)-5)})
			break
		}
		eta := "–"
		if j.State == api.JobRunning && j.ETASeconds > 0 {
			eta = humanSeconds(j.ETASeconds)
		}
		state := string(j.State)
		if j.Error != "" {
			state += ": " + oneLine(j.Error, 60)
		}
		rows = append(rows, []string{j.ID, j.View, state, progressBar(j.Done, j.Total, j.State == api.JobSucceeded),
			humanCount(float64(j.Rows)), humanRate(j.RowsPerSecond), eta})
	}
	return table("JOB\tVIEW\tSTATE\tPROGRESS\tROWS\tROWS/S\tETA", rows)
}

func (t *top) sinksTable(cur *topSample) []string {
	if cur.sinks == nil {
		return nil
	}
	var rows [][]string
	if len(cur.sinks) == 0 {
		rows = append(rows, []string{"(no sinks)"})
	}
	for _, s := range cur.sinks {
		st, _ := sinkStats(cur, s.Name)
		wr := t.rateText(func(x *topSample) (float64, bool) {
			y, ok := sinkStats(x, s.Name)
			return float64(y.Rows), ok
		})
		health := "healthy"
		if !s.Healthy {
			health = "FAILING"
		}
		// Dead letters are counted by the log (the sink's dead-letter
		// topic), so the number survives restarts.
		dead := int64(0)
		for _, tp := range cur.stats.Topics {
			if tp.Name == s.Name+pipelines.DeadLetterSuffix {
				for _, e := range tp.EndOffsets {
					dead += e
				}
			}
		}
		rows = append(rows, []string{s.Name, s.Type, health, humanCount(float64(st.Rows)), wr, humanCount(float64(st.Retries)),
			humanCount(float64(dead)), oneLine(s.Error, 70)})
	}
	return table("SINK\tTYPE\tHEALTH\tWRITTEN\tWRITTEN/S\tRETRIES\tDEAD-LETTERS\tERROR", rows)
}

// shortTime shows t as its clock on the day of now (UTC), with the date on
// other days.
func shortTime(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Format(time.DateOnly) == now.Format(time.DateOnly) {
		return t.Format("15:04:05Z")
	}
	return t.Format("2006-01-02T15:04Z")
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

// oneLine makes an error message fit a table cell: one line, at most n runes.
func oneLine(msg string, n int) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return msg
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
