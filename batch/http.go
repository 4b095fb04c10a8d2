package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Handler serves the batch layer's part of the HTTP API (see the README, HTTP API):
//
//	POST /v1/views/{view}/recompute[?from=RFC3339&to=RFC3339]  → 202 {"job": id}
//	GET  /v1/jobs/{id}                                         → the JobStatus
//	GET  /v1/jobs                                              → {"jobs": [JobStatus, …]}, newest first
//
// Errors are {"error": message}: 400 for a bad time (naming the
// parameter), 404 for an unknown view or job.
func (b *Batch) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/views/{view}/recompute", b.handleRecompute)
	mux.HandleFunc("GET /v1/jobs/{id}", b.handleJob)
	mux.HandleFunc("GET /v1/jobs", b.handleJobs)
	return mux
}

func (b *Batch) handleRecompute(w http.ResponseWriter, r *http.Request) {
	view := r.PathValue("view")
	if b.views[view] == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown view %q", view))
		return
	}
	q := r.URL.Query()
	var times [2]time.Time
	for i, name := range []string{"from", "to"} {
		s := q.Get(name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not an RFC 3339 time", name, s))
			return
		}
		times[i] = t
	}
	id, err := b.Recompute(view, times[0], times[1])
	switch {
	case errors.Is(err, ErrBadRange):
		writeError(w, http.StatusBadRequest, "from: must be before to")
		return
	case errors.Is(err, ErrUnknownView):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+id)
	writeJSON(w, http.StatusAccepted, map[string]string{"job": id})
}

func (b *Batch) handleJob(w http.ResponseWriter, r *http.Request) {
	s, ok := b.Job(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown job %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (b *Batch) handleJobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"jobs": b.Jobs()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
