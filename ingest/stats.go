package ingest

import (
	"sort"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/promread"
)

// AddStats puts ingest's live numbers into a GET /v1/stats answer: the
// counters /metrics exports, totals since start, per topic and summed.
func (in *Ingest) AddStats(s *api.Stats) {
	st := &api.IngestStats{InFlight: in.inFlight.Load(), Topics: []api.IngestTopicStats{}}
	st.Requests, _ = promread.Histogram(in.metrics.ackSeconds)
	st.Rejects = promread.Count(in.metrics.unknownTopic)
	names := make([]string, 0, len(in.topics))
	for name := range in.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := in.topics[name].m
		t := api.IngestTopicStats{Topic: name, Events: promread.Count(m.events), Duplicates: promread.Count(m.duplicates), Bytes: promread.Count(m.bytes)}
		for _, c := range m.rejects {
			t.Rejects += promread.Count(c)
		}
		st.Events += t.Events
		st.Duplicates += t.Duplicates
		st.Bytes += t.Bytes
		st.Rejects += t.Rejects
		st.Topics = append(st.Topics, t)
	}
	s.Ingest = st
}
