package sinks

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// maxDeadLetterLimit bounds ?limit= of the dead-letter listing.
const maxDeadLetterLimit = 10000

// SinkStatus is one sink in GET /v1/sinks.
type SinkStatus struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Sources []string `json:"sources"`
	Healthy bool     `json:"healthy"`
	Error   string   `json:"error,omitempty"`
}

// Handler serves the sinks' HTTP API, for the lead to mount on the shared
// listener:
//
//	GET  /v1/sinks                       {"sinks": [SinkStatus…]}
//	GET  /v1/sinks/{sink}/dlq?limit=N    {"sink", "dead_letters": [DeadLetter…]} (not yet replayed, oldest first; N ≤ 10000, default 100)
//	POST /v1/sinks/{sink}/dlq/replay     {"sink", "replayed", "failed"}
//
// Errors are {"error": "..."} with 404 for an unknown sink, 400 for a bad
// limit and 503 when the log or the target fails.
func Handler(runners []*Runner) http.Handler {
	byName := make(map[string]*Runner, len(runners))
	for _, r := range runners {
		byName[r.Name()] = r
	}
	find := func(w http.ResponseWriter, req *http.Request) *Runner {
		r := byName[req.PathValue("sink")]
		if r == nil {
			writeJSON(w, http.StatusNotFound, errorBody("no sink named "+strconv.Quote(req.PathValue("sink"))))
		}
		return r
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sinks", func(w http.ResponseWriter, req *http.Request) {
		out := make([]SinkStatus, 0, len(runners))
		for _, r := range runners {
			st := SinkStatus{Name: r.Name(), Type: r.Type(), Sources: r.Sources(), Healthy: true}
			if err := r.Health(req.Context()); err != nil {
				st.Healthy, st.Error = false, err.Error()
			}
			out = append(out, st)
		}
		writeJSON(w, http.StatusOK, map[string]any{"sinks": out})
	})
	mux.HandleFunc("GET /v1/sinks/{sink}/dlq", func(w http.ResponseWriter, req *http.Request) {
		r := find(w, req)
		if r == nil {
			return
		}
		limit := 100
		if s := req.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > maxDeadLetterLimit {
				writeJSON(w, http.StatusBadRequest, errorBody("limit must be an integer from 1 to "+strconv.Itoa(maxDeadLetterLimit)))
				return
			}
			limit = n
		}
		dls, err := r.DeadLetters(req.Context(), limit)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody(err.Error()))
			return
		}
		if dls == nil {
			dls = []DeadLetter{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"sink": r.Name(), "dead_letters": dls})
	})
	mux.HandleFunc("POST /v1/sinks/{sink}/dlq/replay", func(w http.ResponseWriter, req *http.Request) {
		r := find(w, req)
		if r == nil {
			return
		}
		replayed, failed, err := r.Replay(req.Context())
		body := map[string]any{"sink": r.Name(), "replayed": replayed, "failed": failed}
		if err != nil {
			body["error"] = err.Error()
			status := http.StatusServiceUnavailable
			if errors.Is(err, req.Context().Err()) {
				status = http.StatusRequestTimeout
			}
			writeJSON(w, status, body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
	return mux
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
