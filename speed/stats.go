package speed

import (
	"math"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/promread"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// AddStats puts the speed layer's live numbers per view into a GET
// /v1/stats answer, read from the metrics /metrics exports (the view
// goroutines own the engines; the metrics are safe to read from here).
// Counters are totals since start.
func (s *Speed) AddStats(st *api.Stats) {
	for _, vs := range s.views {
		m := vs.m
		v := api.ViewStats{View: vs.view.Name,
			Events:               promread.Count(m.events),
			LateEvents:           promread.Count(m.late),
			RejectedEvents:       promread.Count(m.rejected),
			OpenWindows:          int64(promread.Value(m.stateWindows)),
			CheckpointAgeSeconds: promread.Value(m.checkpointAge),
			CheckpointBytes:      int64(promread.Value(m.checkpointBytes)),
		}
		if sec := promread.Value(m.watermark); sec != 0 {
			wm := event.Time(int64(math.Round(sec * 1e6)))
			v.Watermark = &wm
		}
		st.Views = append(st.Views, v)
	}
}
