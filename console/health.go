package console

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Check reports whether one part of the process works; the error says what
// is wrong.
type Check func(ctx context.Context) error

// Health serves /healthz (the process is alive) and /readyz (every part it
// runs can do its work; 503 naming what is down otherwise).
type Health struct {
	mu     sync.Mutex
	checks map[string]Check
}

// NewHealth returns a Health with no checks.
func NewHealth() *Health { return &Health{checks: map[string]Check{}} }

// Add registers a named readiness check, e.g. "log" or "sink warehouse".
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// Register mounts /healthz and /readyz. They are never behind auth: load
// balancers and orchestrators probe them.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h.ready)
}

// Down runs every check and returns the failing ones by name.
func (h *Health) Down(ctx context.Context) map[string]string {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	checks := make([]Check, 0, len(h.checks))
	for n, c := range h.checks {
		names = append(names, n)
		checks = append(checks, c)
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c(ctx)
		}()
	}
	wg.Wait()
	down := map[string]string{}
	for i, err := range errs {
		if err != nil {
			down[names[i]] = err.Error()
		}
	}
	return down
}

func (h *Health) ready(w http.ResponseWriter, r *http.Request) {
	down := h.Down(r.Context())
	if len(down) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
		return
	}
	names := make([]string, 0, len(down))
	for n := range down {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "down": down, "parts": names})
}
