package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/robfig/cron/v3"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/expr"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Bounds of "all time" for window-start ranges, with room to add a window
// size without overflow.
const (
	minTime = math.MinInt64 / 4
	maxTime = math.MaxInt64 / 4
)

// span is a range [from, to) of window starts (UTC µs).
type span struct{ from, to int64 }

// viewJob is what the batch layer keeps for one view: its compiled plan,
// schedule and last result. Runs of one view hold sem, so they never
// interleave.
type viewJob struct {
	v      *pipelines.View
	topic  *pipelines.Topic
	plan   *plan.Plan
	sched  cron.Schedule // nil: only on request
	tl     *topicLake
	dir    string
	fields []bool // topic fields the plan reads
	ids    bool   // the plan reads event ids (first, last)
	sem    chan struct{}
	st     *viewState // owned by the run holding sem
	// published is the horizon (UTC µs) of the last result, for readers
	// outside runs; noHorizon before the first.
	published atomic.Int64
	// owned is set while this process runs the view's batch.
	owned atomic.Bool
}

const noHorizon = math.MinInt64

// horizon returns the view's published horizon.
func (vj *viewJob) horizon() (int64, bool) {
	h := vj.published.Load()
	return h, h != noHorizon
}

// sessionLookback is how far before a range of session starts a run reads,
// so that a session that began earlier is seen to begin earlier (and is
// left out) rather than cut in two. Sessions longer than this are split;
// docs/lake-format.md says so.
func sessionLookback(gap time.Duration) int64 {
	return max(int64(time.Hour/time.Microsecond), 10*int64(gap/time.Microsecond))
}

func (b *Batch) newViewJob(v *pipelines.View) (*viewJob, error) {
	t := b.p.TopicByName(v.From)
	if t == nil {
		return nil, fmt.Errorf("batch: view %s reads unknown topic %q", v.Name, v.From)
	}
	pl, err := plan.Compile(v, t)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	vj := &viewJob{v: v, topic: t, plan: pl, tl: b.lakes[t.Name], sem: make(chan struct{}, 1),
		dir: b.viewDirOf(v.Name)}
	if vj.sched, err = v.Batch.Cron(); err != nil {
		return nil, fmt.Errorf("batch: view %s: batch.schedule %q: %w", v.Name, v.Batch.Schedule, err)
	}
	vj.fields, vj.ids = pl.Reads()
	vj.st, err = readViewFile(vj.dir, v, t)
	if err != nil {
		return nil, err
	}
	vj.published.Store(noHorizon)
	if vj.st.hasHorizon {
		vj.published.Store(vj.st.horizon)
	}
	if vj.st.hasHorizon && b.store != nil {
		b.store.PutBatch(v.Name, minTime, maxTime, vj.st.horizon, vj.st.sortedRows())
	}
	return vj, nil
}

func (b *Batch) viewDirOf(view string) string {
	return b.viewDir + "/" + view
}

// completeUntil returns the lake's event-time watermark: the view watermark
// rule of the speed layer (plan.CombineWatermarks) with no lateness,
// applied to what the lake holds, so that a window the batch layer calls
// closed is one the speed layer calls final too, and an event arriving for
// it later is late for both (and corrected by the next run). Per partition
// the newest event time is the newest among the partition's lake files; a
// partition the lake holds up to the end of the log is idle. It is
// plan.NoWatermark while a partition that is still being written has
// nothing in the lake yet, or no partition has.
func (b *Batch) completeUntil(ctx context.Context, vj *viewJob, m *manifest) int64 {
	return plan.CombineWatermarks(b.lakeTimes(ctx, vj, m), 0, plan.NoWatermark)
}

// lakeTimes returns what the watermark rule needs to know of each partition
// of the view's topic from the lake manifest m and the log's end offsets.
// Without the log's end offsets every partition counts as still written.
func (b *Batch) lakeTimes(ctx context.Context, vj *viewJob, m *manifest) []plan.PartitionTime {
	ends := map[int]int64{}
	if b.log != nil {
		infos, err := b.log.Topics(ctx)
		if err != nil {
			b.logger.Warn("batch: cannot read the log's end offsets; every partition counts as still written", "err", err)
		}
		for _, ti := range infos {
			if ti.Name == vj.topic.Name {
				for _, pi := range ti.Partitions {
					ends[pi.Partition] = pi.EndOffset
				}
			}
		}
	}
	parts := make([]plan.PartitionTime, vj.topic.Partitions)
	for p := range parts {
		ps := m.partition(p)
		end, ok := ends[p]
		parts[p] = plan.PartitionTime{Newest: ps.MaxTime, Seen: ps.Rows > 0, Idle: ok && ps.Next >= end}
	}
	return parts
}

// runJob runs one recomputation of vj for job j; rng, when not nil, adds
// a range of window starts to recompute.
func (b *Batch) runJob(ctx context.Context, vj *viewJob, j *job, rng *span) error {
	select {
	case vj.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("batch: view %s: cancelled while queued: %w", vj.v.Name, ctx.Err())
	}
	defer func() { <-vj.sem }()
	startedAt := b.now()
	j.started = time.Now()
	j.update(func(s *api.JobStatus) { s.State, s.StartedAt = api.JobRunning, &startedAt })
	if j.snapshot().Trigger == "request" {
		// Asked for now: what the log holds goes into the lake first, so
		// the run sees every event published before it.
		lake, err := b.makeDurable(ctx, vj.tl)
		if err != nil {
			lake = "the lake was not brought up to the log's end: " + err.Error() + "; recomputing what it holds"
		}
		j.update(func(s *api.JobStatus) { s.Lake = lake })
	}
	err := b.recompute(ctx, vj, j, rng)
	finished := b.now()
	elapsed := time.Since(j.started)
	b.metrics.jobSeconds.WithLabelValues(vj.v.Name).Observe(elapsed.Seconds())
	if err != nil {
		b.metrics.jobFailures.WithLabelValues(vj.v.Name).Inc()
		b.logger.Error("batch: job failed", "view", vj.v.Name, "job", j.snapshot().ID, "err", err)
		j.update(func(s *api.JobStatus) { s.State, s.Error, s.FinishedAt = api.JobFailed, err.Error(), &finished })
		return nil
	}
	s := j.snapshot()
	b.metrics.rowsPerSecond.WithLabelValues(vj.v.Name).Set(s.RowsPerSecond)
	b.metrics.lastSuccess.WithLabelValues(vj.v.Name).Set(float64(finished.UnixMilli()) / 1e3)
	if h, ok := vj.horizon(); ok {
		b.metrics.horizonAge.WithLabelValues(vj.v.Name).Set(finished.Sub(time.UnixMicro(h)).Seconds())
	}
	b.logger.Info("batch: job done", "view", vj.v.Name, "job", s.ID, "hours", s.Total, "rows", s.Rows,
		"windows", s.Windows, "seconds", elapsed.Seconds())
	j.update(func(s *api.JobStatus) { s.State, s.FinishedAt, s.ETASeconds = api.JobSucceeded, &finished, 0 })
	return nil
}

// reach is how far before an event's time a window holding it may start.
func (vj *viewJob) reach() int64 {
	if vj.plan.Session() {
		return sessionLookback(vj.v.Window.Gap.D())
	}
	return int64(vj.v.Window.Size.D() / time.Microsecond)
}

// spans decides which window starts a run recomputes, given the manifest
// it reads and the new horizon h: everything on a first run; otherwise the
// windows that closed since the last horizon, the windows of every hour
// that got lake files since the last run (late events), and rng.
func (vj *viewJob) spans(m *manifest, h int64, rng *span) []span {
	st := vj.st
	reach := vj.reach()
	var out []span
	if !st.hasHorizon {
		out = append(out, span{minTime, h})
	} else {
		if h > st.horizon {
			// The windows closed since the last run.
			out = append(out, span{st.horizon - reach, h})
		}
		for f := range m.all() {
			if f.Added > st.lakeVersion && f.Start < h {
				out = append(out, span{f.Start - reach, f.End})
			}
		}
	}
	if rng != nil {
		out = append(out, *rng)
	}
	return mergeSpans(out)
}

// clipSpans leaves out of spans the window starts before from; clipped
// says whether any was left out.
func clipSpans(spans []span, from int64) (out []span, clipped bool) {
	for _, sp := range spans {
		if sp.from < from {
			clipped = true
			sp.from = from
		}
		if sp.from < sp.to {
			out = append(out, sp)
		}
	}
	return out, clipped
}

func mergeSpans(in []span) []span {
	slices.SortFunc(in, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	var out []span
	for _, s := range in {
		if s.to <= s.from {
			continue
		}
		if n := len(out); n > 0 && s.from <= out[n-1].to {
			out[n-1].to = max(out[n-1].to, s.to)
			continue
		}
		out = append(out, s)
	}
	return out
}

// eventRange is the range of event times the windows of sp (closed by h)
// can hold.
func (vj *viewJob) eventRange(sp span, h int64) (int64, int64) {
	if vj.plan.Session() {
		return sp.from - vj.reach(), h
	}
	first, last := vj.plan.WindowStarts(sp.from, sp.to)
	return first, min(last+vj.reach(), h)
}

// recompute is one run: read, compute, then publish in the order that
// keeps a failure harmless: the view's log topic first (sinks upsert, so a
// repeat is harmless), then the durable view file (which moves the
// run's bookkeeping forward), then the serving store.
func (b *Batch) recompute(ctx context.Context, vj *viewJob, j *job, rng *span) error {
	m, unpin := vj.tl.ms.pin()
	defer unpin()
	// The horizon is the lake's watermark minus the view's lateness, the
	// speed layer's watermark over what the lake holds; it never moves back.
	h := plan.Earlier(b.completeUntil(ctx, vj, m), vj.v.Window.Lateness.D().Microseconds())
	if vj.st.hasHorizon && h < vj.st.horizon {
		h = vj.st.horizon
	}
	if !vj.st.hasHorizon && h <= 0 {
		// No partition is in the lake yet: nothing is complete, and a
		// horizon at the epoch would only confuse readers. It stays unset.
		j.progress(0, 0, 0)
		note := "the lake holds no event of topic " + vj.topic.Name + " yet"
		if m.fileCount() > 0 {
			note = "no window of the lake's events is closed yet (a partition of topic " + vj.topic.Name + " still being written has nothing in the lake)"
		}
		j.update(func(s *api.JobStatus) { s.NothingToDo, s.Note = true, note })
		return nil
	}
	spans := vj.spans(m, h, rng)
	var retained string // why a requested range was cut short
	if keep := vj.topic.Lake.Retention.D(); keep > 0 {
		// Windows whose events may be in periods the lake has let go keep
		// the rows last computed: recomputing them from what is left
		// would shrink or drop them.
		var clipped bool
		from := b.now().Add(-keep).UnixMicro() + vj.reach()
		if spans, clipped = clipSpans(spans, from); clipped && rng != nil && rng.from < from {
			retained = "windows starting before " + event.FormatTime(from) + " keep the rows last computed: the lake keeps topic " +
				vj.topic.Name + "'s events for " + vj.topic.Lake.Retention.String() + " (topics[].lake.retention)"
			j.update(func(s *api.JobStatus) { s.Note = retained })
		}
	}
	if len(spans) == 0 && vj.st.hasHorizon && h == vj.st.horizon {
		hz := time.UnixMicro(h).UTC()
		j.update(func(s *api.JobStatus) {
			s.NothingToDo, s.Horizon = true, &hz
			s.Note = cmp.Or(retained, "no window closed and no late event reached the lake since the last run; the horizon stays at "+event.FormatTime(h))
		})
	}
	// Files to read, per span, grouped by period (the unit of progress).
	hoursOf := make([][][]fileEntry, len(spans))
	total := 0
	for i, sp := range spans {
		from, to := vj.eventRange(sp, h)
		if from >= to {
			continue
		}
		for _, f := range m.FilesIn(from, to) {
			g := hoursOf[i]
			if n := len(g); n > 0 && g[n-1][0].Start == f.Start {
				g[n-1] = append(g[n-1], f)
				continue
			}
			hoursOf[i] = append(g, []fileEntry{f})
		}
		total += len(hoursOf[i])
	}
	j.progress(0, total, 0)
	c := newComputer(vj, j, total)
	results := make([][]viewrow.Row, len(spans))
	for i, sp := range spans {
		rows, err := c.span(ctx, m, sp, h, hoursOf[i])
		if err != nil {
			return err
		}
		results[i] = rows
	}
	n := 0
	for _, rows := range results {
		n += len(rows)
	}
	j.update(func(s *api.JobStatus) { s.Windows = n })
	if err := b.appendViewRows(ctx, vj, j.snapshot().ID, results); err != nil {
		return err
	}
	prevHorizon, hadHorizon := vj.st.horizon, vj.st.hasHorizon
	for i, sp := range spans {
		vj.st.replace(sp.from, sp.to, results[i], vj.plan)
	}
	vj.st.horizon, vj.st.hasHorizon, vj.st.lakeVersion = h, true, m.Version
	data, err := encodeViewFile(vj.v, vj.topic, vj.st)
	if err == nil {
		err = writeViewData(vj.dir, data)
	}
	if err == nil && b.shared != nil {
		// Every process of the pipeline sees the result from there.
		err = b.shared.save(ctx, vj.v.Name, data)
	}
	if err != nil {
		// Keep memory in line with disk: the next run starts from the
		// old bookkeeping and redoes this one's work.
		vj.st.horizon, vj.st.hasHorizon = prevHorizon, hadHorizon
		if st, rerr := readViewFile(vj.dir, vj.v, vj.topic); rerr == nil {
			vj.st = st
		}
		return err
	}
	if b.store != nil {
		// The horizon moves with the last span, which holds the windows
		// that closed since the last run; until then it stays put, so no
		// window shows neither layer.
		hz := prevHorizon
		if !hadHorizon {
			hz = minTime
		}
		for i, sp := range spans {
			if i == len(spans)-1 {
				hz = h
			}
			b.store.PutBatch(vj.v.Name, sp.from, sp.to, hz, results[i])
		}
		if len(spans) == 0 {
			b.store.PutBatch(vj.v.Name, 0, 0, h, nil)
		}
	}
	vj.published.Store(h)
	hz := event.Time(h)
	j.update(func(s *api.JobStatus) { s.Horizon = &hz })
	return nil
}

// computer runs a view's plan over lake files.
type computer struct {
	vj    *viewJob
	j     *job
	match *expr.Matcher
	total int
	done  int
	rows  int64
	key   []byte
	gone  []plan.TimeWindow
}

func newComputer(vj *viewJob, j *job, total int) *computer {
	return &computer{vj: vj, j: j, match: vj.plan.NewMatcher(), total: total}
}

// span computes the windows starting in sp and ending at or before h from
// the files of periods (grouped by period).
func (c *computer) span(ctx context.Context, m *manifest, sp span, h int64, periods [][]fileEntry) ([]viewrow.Row, error) {
	pl := c.vj.plan
	var rows []viewrow.Row
	row := func(start, end int64, key string, st *aggregate.State) error {
		g, err := pl.DecodeKey([]byte(key))
		if err != nil {
			return fmt.Errorf("batch: view %s: %w", c.vj.v.Name, err)
		}
		rows = append(rows, viewrow.Row{Start: start, End: end, Group: g, Aggs: pl.Finalize(st), Final: true})
		return nil
	}
	if pl.Session() {
		sessions, err := c.sessionSpan(ctx, sp, h, periods)
		if err != nil {
			return nil, err
		}
		for k, ss := range sessions {
			for _, s := range ss.List() {
				if s.Start >= sp.from && s.Start < sp.to && s.End <= h {
					if err := row(s.Start, s.End, k, s.State); err != nil {
						return nil, err
					}
				}
			}
		}
	} else {
		var files []fileEntry
		var periodOf []int
		for i, fs := range periods {
			for _, fe := range fs {
				files = append(files, fe)
				periodOf = append(periodOf, i)
			}
		}
		workers, err := c.gridSpan(ctx, files, periodOf, len(periods), sp, h)
		if err != nil {
			return nil, fmt.Errorf("batch: view %s: %w", c.vj.v.Name, err)
		}
		size, _, _ := pl.WindowGrid()
		for start, byKey := range mergeWorkers(pl, workers) {
			for k, st := range byKey {
				if err := row(start, start+size, k, st); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.SortFunc(rows, func(a, b viewrow.Row) int { return cmp.Compare(a.Start, b.Start) })
	return rows, nil
}

// sessionSpan reads the events of periods (their files grouped by
// period), one at a time in file order, into the session windows of their
// keys.
func (c *computer) sessionSpan(ctx context.Context, sp span, h int64, periods [][]fileEntry) (map[string]*plan.Sessions, error) {
	pl := c.vj.plan
	evFrom, evTo := c.vj.eventRange(sp, h)
	sessions := map[string]*plan.Sessions{}
	opts := scanOptions{Fields: c.vj.fields, IDs: c.vj.ids}
	var all []fileEntry
	for _, files := range periods {
		all = append(all, files...)
	}
	pf := c.vj.tl.prefetchFiles(ctx, all)
	defer pf.stop()
	next := 0
	for _, files := range periods {
		for range files {
			err := pf.scanFile(ctx, next, opts, func(b *scanBatch) error {
				for i := range b.Events {
					e := &b.Events[i]
					if e.Time < evFrom || e.Time >= evTo {
						continue
					}
					if ok, err := c.match.Match(e); err != nil || !ok {
						continue
					}
					c.key = pl.Key(e, c.key[:0])
					ss := sessions[string(c.key)]
					if ss == nil {
						ss = new(plan.Sessions)
						sessions[string(c.key)] = ss
					}
					_, c.gone = pl.AddSession(ss, e, c.gone[:0])
				}
				c.rows += int64(len(b.Events))
				return nil
			})
			next++
			if err != nil {
				return nil, fmt.Errorf("batch: view %s: %w", c.vj.v.Name, err)
			}
		}
		c.done++
		c.j.progress(c.done, c.total, c.rows)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return sessions, nil
}

// appendViewRows appends a run's rows to the view's log topic, so that
// sinks deliver the corrections. A row goes to the partition of its group
// (event.ViewRowPartition), where the speed layer put its own row.
func (b *Batch) appendViewRows(ctx context.Context, vj *viewJob, jobID string, results [][]viewrow.Row) error {
	if b.log == nil {
		return nil
	}
	vt := b.p.ViewTopic(vj.v)
	parts := max(vt.Partitions, 1)
	byPart := make([][]event.Event, parts)
	n := 0
	for _, rows := range results {
		for i := range rows {
			r := &rows[i]
			p := event.ViewRowPartition(r.Group, parts)
			byPart[p] = append(byPart[p], r.Event(fmt.Sprintf("%s/%d", jobID, n)))
			n++
		}
	}
	const chunk = 1000
	for p, evs := range byPart {
		for len(evs) > 0 {
			k := min(len(evs), chunk)
			_, err := b.log.Append(ctx, vt.Name, p, evs[:k])
			if errors.Is(err, broker.ErrUnknownTopic) {
				// A log opened without the views' topics: the serving store
				// still gets the rows, sinks do not.
				b.logger.Warn("batch: the log has no topic for the view; its rows reach no sink", "view", vj.v.Name, "err", err)
				return nil
			}
			if err != nil {
				return fmt.Errorf("batch: view %s: appending rows to its log topic: %w", vj.v.Name, err)
			}
			evs = evs[k:]
		}
	}
	return nil
}
