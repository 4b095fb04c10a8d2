package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// ErrUnknownView is returned (wrapped) for a view the pipeline lacks.
var ErrUnknownView = errors.New("batch: unknown view")

// ErrBadRange is returned (wrapped) for a recompute range with from after to.
var ErrBadRange = errors.New("batch: bad time range")

// job is one recomputation, owned by the jobTable.
type job struct {
	mu      sync.Mutex
	status  api.JobStatus
	started time.Time // real time, for rates
	watch   func(api.JobStatus)
	cancel  context.CancelFunc
}

func (j *job) snapshot() api.JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// update changes the status under the lock and tells the watcher.
func (j *job) update(f func(s *api.JobStatus)) {
	j.mu.Lock()
	f(&j.status)
	s := j.status
	w := j.watch
	j.mu.Unlock()
	if w != nil {
		w(s)
	}
}

// progress records hours done and rows read, with the rates they imply.
func (j *job) progress(done, total int, rows int64) {
	el := time.Since(j.started).Seconds()
	j.update(func(s *api.JobStatus) {
		s.Done, s.Total, s.Rows = done, total, rows
		if el > 0 {
			s.RowsPerSecond = float64(rows) / el
		}
		if done > 0 && total > done {
			s.ETASeconds = el / float64(done) * float64(total-done)
		} else {
			s.ETASeconds = 0
		}
	})
}

// jobTable runs jobs and keeps their history. Every job goroutine is
// started by submit and waited for by stop.
type jobTable struct {
	mu      sync.Mutex
	jobs    map[string]*job
	order   []string // ids, oldest first
	max     int
	seq     int
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	stopped bool
}

func newJobTable(history int) *jobTable {
	if history <= 0 {
		history = 100
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &jobTable{jobs: map[string]*job{}, max: history, ctx: ctx, cancel: cancel}
}

// submit registers a job and runs fn for it in a goroutine the table owns.
func (t *jobTable) submit(view, trigger string, now time.Time, watch func(api.JobStatus), fn func(ctx context.Context, j *job) error) (*job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return nil, errors.New("batch: stopped")
	}
	t.seq++
	id := fmt.Sprintf("%s-%s-%d", view, now.UTC().Format("20060102T150405Z"), t.seq)
	j := &job{status: api.JobStatus{ID: id, View: view, State: api.JobQueued, Trigger: trigger, QueuedAt: now}, watch: watch}
	t.jobs[id] = j
	t.order = append(t.order, id)
	t.trim()
	jctx, cancel := context.WithCancel(t.ctx)
	j.cancel = cancel
	t.wg.Go(func() {
		defer cancel()
		if err := fn(jctx, j); err != nil {
			j.update(func(s *api.JobStatus) {
				s.State, s.Error = api.JobFailed, err.Error()
			})
		}
	})
	return j, nil
}

// trim forgets the oldest finished jobs past the history size.
func (t *jobTable) trim() {
	for len(t.order) > t.max {
		drop := -1
		for i, id := range t.order {
			if t.jobs[id].snapshot().Finished() {
				drop = i
				break
			}
		}
		if drop < 0 {
			return
		}
		delete(t.jobs, t.order[drop])
		t.order = slices.Delete(t.order, drop, drop+1)
	}
}

func (t *jobTable) get(id string) (api.JobStatus, bool) {
	t.mu.Lock()
	j := t.jobs[id]
	t.mu.Unlock()
	if j == nil {
		return api.JobStatus{}, false
	}
	return j.snapshot(), true
}

// list returns every remembered job, newest first.
func (t *jobTable) list() []api.JobStatus {
	t.mu.Lock()
	js := make([]*job, 0, len(t.order))
	for i := len(t.order) - 1; i >= 0; i-- {
		js = append(js, t.jobs[t.order[i]])
	}
	t.mu.Unlock()
	out := make([]api.JobStatus, len(js))
	for i, j := range js {
		out[i] = j.snapshot()
	}
	return out
}

// pending reports whether view has a queued job of trigger.
func (t *jobTable) pending(view, trigger string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		s := j.snapshot()
		if s.View == view && s.Trigger == trigger && !s.Finished() {
			return true
		}
	}
	return false
}

// run waits for ctx, then cancels running jobs and waits for them.
func (t *jobTable) run(ctx context.Context) error {
	<-ctx.Done()
	t.stop()
	return nil
}

// stop cancels every job and waits for their goroutines; later submits fail.
func (t *jobTable) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

// Recompute starts a job that recomputes view now: the windows closed
// since the last run, those of hours that got new lake files since (late
// events), and, when from is before to, every window starting in [from, to).
// Zero times leave the range out. It returns at once with the job's id; the
// job waits for a running job of the same view to finish first.
func (b *Batch) Recompute(view string, from, to time.Time) (string, error) {
	if vj := b.views[view]; vj != nil {
		if err := b.awaitOwner(vj); err != nil {
			return "", err
		}
	}
	j, err := b.submit(view, "request", from, to, nil)
	if err != nil {
		return "", err
	}
	return j.snapshot().ID, nil
}

// recomputeWait is Recompute waited for: it calls progress (if not nil) on every
// change of the job's status and returns the final status. Cancelling ctx
// cancels the job. For `lambdaflow batch run`.
func (b *Batch) recomputeWait(ctx context.Context, view string, from, to time.Time, progress func(api.JobStatus)) (api.JobStatus, error) {
	if vj := b.views[view]; vj != nil {
		if err := b.awaitOwner(vj); err != nil {
			return api.JobStatus{}, err
		}
	}
	done := make(chan struct{})
	var once sync.Once
	watch := func(s api.JobStatus) {
		if progress != nil {
			progress(s)
		}
		if s.Finished() {
			once.Do(func() { close(done) })
		}
	}
	j, err := b.submit(view, "request", from, to, watch)
	if err != nil {
		return api.JobStatus{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		j.cancel()
		<-done
	}
	s := j.snapshot()
	if s.State == api.JobFailed {
		return s, errors.New(s.Error)
	}
	return s, nil
}

// Job returns a job's status; ok is false for an id never seen or forgotten.
func (b *Batch) Job(id string) (api.JobStatus, bool) { return b.jobs.get(id) }

// Jobs returns the remembered jobs, newest first.
func (b *Batch) Jobs() []api.JobStatus { return b.jobs.list() }

// Close cancels running jobs and waits for them. Run does the same on its
// way out; Close is for a Batch used without Run (the CLI's batch run).
func (b *Batch) Close() error {
	b.jobs.stop()
	b.releaseStore()
	return nil
}

func (b *Batch) submit(view, trigger string, from, to time.Time, watch func(api.JobStatus)) (*job, error) {
	vj := b.views[view]
	if vj == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownView, view)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrBadRange, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	var rng *span
	if !from.IsZero() || !to.IsZero() {
		rng = &span{from: minTime, to: maxTime}
		if !from.IsZero() {
			rng.from = from.UnixMicro()
		}
		if !to.IsZero() {
			rng.to = to.UnixMicro()
		}
	}
	return b.jobs.submit(view, trigger, b.now(), watch, func(ctx context.Context, j *job) error {
		return b.runJob(ctx, vj, j, rng)
	})
}
