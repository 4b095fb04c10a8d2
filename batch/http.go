package batch

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// Routes returns the batch layer's part of the HTTP API:
//
//	POST /v1/views/{view}/recompute[?from=RFC3339&to=RFC3339]  → 202 {"job": id}   (admin)
//	GET  /v1/jobs/{id}                                         → the JobStatus      (read)
//	GET  /v1/jobs                                              → {"jobs": [JobStatus, …]}, newest first
//
// Errors are {"error": message}: 400 for a bad time (naming the
// parameter), 404 for an unknown view or job, 409 in a process that does
// not run the view's batch (another process of the pipeline does).
func (b *Batch) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "POST /v1/views/{view}/recompute", Access: httpapi.Admin, Handler: http.HandlerFunc(b.handleRecompute)},
		{Pattern: "GET /v1/jobs/{id}", Access: httpapi.Read, Handler: http.HandlerFunc(b.handleJob)},
		{Pattern: "GET /v1/jobs", Access: httpapi.Read, Handler: http.HandlerFunc(b.handleJobs)},
	}
}

func (b *Batch) handleRecompute(w http.ResponseWriter, r *http.Request) {
	view := r.PathValue("view")
	if b.views[view] == nil {
		httpapi.WriteUnknown(w, "view", view, b.p.ViewNames())
		return
	}
	q := r.URL.Query()
	var times [2]time.Time
	for i, name := range []string{"from", "to"} {
		s := httpapi.Last(q, name)
		if s == "" {
			continue
		}
		t, err := httpapi.ParseTime(s)
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, name+": "+err.Error())
			return
		}
		times[i] = t
	}
	id, err := b.Recompute(view, times[0], times[1])
	switch {
	case errors.Is(err, ErrBadRange):
		httpapi.WriteError(w, http.StatusBadRequest, "from: must be before to")
		return
	case errors.Is(err, ErrUnknownView):
		httpapi.WriteError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, ErrNotOwner):
		httpapi.WriteError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		httpapi.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+id)
	httpapi.WriteJSON(w, http.StatusAccepted, api.JobStarted{Job: id})
}

func (b *Batch) handleJob(w http.ResponseWriter, r *http.Request) {
	s, ok := b.Job(r.PathValue("id"))
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, fmt.Sprintf("unknown job %q", r.PathValue("id")))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s)
}

func (b *Batch) handleJobs(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, api.Jobs{Jobs: b.Jobs()})
}
