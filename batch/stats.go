package batch

import (
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/promread"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// AddStats puts the batch layer's live numbers into a GET /v1/stats
// answer: the lake writer's counters per topic and what the lake holds,
// each view's horizon and last job, and the job history by state. Counters
// are totals since start; what the lake holds is durable.
func (b *Batch) AddStats(s *api.Stats) {
	st := &api.BatchStats{Lake: []api.LakeStats{}, Views: []api.BatchViewStats{}, Jobs: map[api.JobState]int{}}
	m := b.metrics
	for i := range b.p.Topics {
		t := b.p.Topics[i].Name
		ls := api.LakeStats{Topic: t,
			Rows:         promread.Count(m.lakeRows.WithLabelValues(t)),
			Files:        promread.Count(m.lakeFiles.WithLabelValues(t)),
			Compactions:  promread.Count(m.compactions.WithLabelValues(t)),
			ExpiredFiles: promread.Count(m.expired.WithLabelValues(t)),
		}
		if mf := b.manifestOf(t); mf != nil {
			ls.FilesHeld, ls.RowsHeld, ls.PeriodsHeld = mf.fileCount(), mf.rowsHeld(), mf.periodsHeld()
			for f := range mf.all() {
				oldest := event.Time(f.Start)
				ls.OldestPeriod = &oldest
				break
			}
		}
		st.Lake = append(st.Lake, ls)
	}
	for i := range b.p.Views {
		v := b.p.Views[i].Name
		vs := api.BatchViewStats{View: v,
			Failures:      promread.Count(m.jobFailures.WithLabelValues(v)),
			RowsPerSecond: promread.Value(m.rowsPerSecond.WithLabelValues(v)),
		}
		if vj := b.views[v]; vj != nil {
			if h, ok := vj.horizon(); ok {
				t := event.Time(h)
				vs.Horizon = &t
			}
		}
		if sec := promread.Value(m.lastSuccess.WithLabelValues(v)); sec > 0 {
			t := time.UnixMilli(int64(sec * 1e3)).UTC()
			vs.LastSuccess = &t
		}
		st.Views = append(st.Views, vs)
	}
	for _, j := range b.jobs.list() {
		st.Jobs[j.State]++
	}
	s.Batch = st
}
