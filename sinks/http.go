package sinks

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/internal/promread"
)

// maxDeadLetterLimit bounds ?limit= of the dead-letter listing.
const maxDeadLetterLimit = 10000

// Routes returns the sinks' part of the HTTP API over runners:
//
//	GET  /v1/sinks                       {"sinks": [SinkStatus…]}                (read)
//	GET  /v1/sinks/{sink}/dlq?limit=N    {"sink", "dead_letters": [DeadLetter…]} (read; not yet replayed, oldest first; N ≤ 10000, default 100)
//	POST /v1/sinks/{sink}/dlq/replay     {"sink", "replayed", "failed"}          (admin)
//
// Errors are {"error": "..."} with 404 for an unknown sink, 400 for a bad
// limit and 503 when the log or the target fails.
func Routes(runners []*Runner) []httpapi.Route {
	byName := make(map[string]*Runner, len(runners))
	names := make([]string, 0, len(runners))
	for _, r := range runners {
		byName[r.Name()] = r
		names = append(names, r.Name())
	}
	find := func(w http.ResponseWriter, req *http.Request) *Runner {
		r := byName[req.PathValue("sink")]
		if r == nil {
			httpapi.WriteUnknown(w, "sink", req.PathValue("sink"), names)
		}
		return r
	}
	list := func(w http.ResponseWriter, req *http.Request) {
		out := make([]api.SinkStatus, 0, len(runners))
		for _, r := range runners {
			st := api.SinkStatus{Name: r.Name(), Type: r.Type(), Sources: r.Sources(), Healthy: true}
			if err := r.Health(req.Context()); err != nil {
				st.Healthy, st.Error = false, err.Error()
			}
			out = append(out, st)
		}
		httpapi.WriteJSON(w, http.StatusOK, api.Sinks{Sinks: out})
	}
	deadLetters := func(w http.ResponseWriter, req *http.Request) {
		r := find(w, req)
		if r == nil {
			return
		}
		limit := 100
		if s := req.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > maxDeadLetterLimit {
				httpapi.WriteError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxDeadLetterLimit))
				return
			}
			limit = n
		}
		dls, err := r.DeadLetters(req.Context(), limit)
		if err != nil {
			httpapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if dls == nil {
			dls = []api.DeadLetter{}
		}
		httpapi.WriteJSON(w, http.StatusOK, api.DeadLetters{Sink: r.Name(), DeadLetters: dls})
	}
	replay := func(w http.ResponseWriter, req *http.Request) {
		r := find(w, req)
		if r == nil {
			return
		}
		replayed, failed, err := r.Replay(req.Context())
		body := api.Replay{Sink: r.Name(), Replayed: replayed, Failed: failed}
		if err != nil {
			body.Error = err.Error()
			status := http.StatusServiceUnavailable
			if errors.Is(err, req.Context().Err()) {
				status = http.StatusRequestTimeout
			}
			httpapi.WriteJSON(w, status, body)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, body)
	}
	return []httpapi.Route{
		{Pattern: "GET /v1/sinks", Access: httpapi.Read, Handler: http.HandlerFunc(list)},
		{Pattern: "GET /v1/sinks/{sink}/dlq", Access: httpapi.Read, Handler: http.HandlerFunc(deadLetters)},
		{Pattern: "POST /v1/sinks/{sink}/dlq/replay", Access: httpapi.Admin, Handler: http.HandlerFunc(replay)},
	}
}

// Checks returns the sink's readiness, named "sink <name>": see Health.
func (r *Runner) Checks() []httpapi.Check {
	return []httpapi.Check{{Name: "sink " + r.Name(), Ready: func(ctx context.Context) error { return r.Health(ctx) }}}
}

// AddStats puts the sink's live numbers into a GET /v1/stats answer: its
// counters summed over its sources, totals since start.
func (r *Runner) AddStats(s *api.Stats) {
	st := api.SinkStats{Sink: r.Name(), Healthy: r.lastError() == nil}
	for _, src := range r.sources {
		st.Rows += promread.Count(src.m.written)
		st.Retries += promread.Count(src.m.retries)
		st.DeadLetters += promread.Count(src.m.deadLetters)
		n, sum := promread.Histogram(src.m.batchSeconds)
		st.Batches += n
		st.BatchSeconds += sum
	}
	s.Sinks = append(s.Sinks, st)
}
