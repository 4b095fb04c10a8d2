package console

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// Health serves /healthz (the process is alive) and /readyz (every part it
// runs can do its work; 503 naming what is down otherwise). The parts
// report their own readiness as checks; Health only runs them.
type Health struct {
	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

// NewHealth returns a Health with no checks.
func NewHealth() *Health { return &Health{checks: map[string]func(context.Context) error{}} }

// Add registers readiness checks by name ("log", "ingest", "sink
// warehouse"); a later check of the same name replaces an earlier one.
func (h *Health) Add(checks ...httpapi.Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range checks {
		h.checks[c.Name] = c.Ready
	}
}

// Routes returns /healthz and /readyz. They are public: load balancers
// and orchestrators probe them.
func (h *Health) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /healthz", Access: httpapi.Public, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ok"})
		})},
		{Pattern: "GET /readyz", Access: httpapi.Public, Handler: http.HandlerFunc(h.ready)},
	}
}

// down runs every check and returns the failing ones by name.
func (h *Health) down(ctx context.Context) map[string]error {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	checks := make([]func(context.Context) error, 0, len(h.checks))
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
		wg.Go(func() { errs[i] = c(ctx) })
	}
	wg.Wait()
	down := map[string]error{}
	for i, err := range errs {
		if err != nil {
			down[names[i]] = err
		}
	}
	return down
}

// ready answers /readyz. It is public: each part that is down shows with
// its short reason only (httpapi.Reason), never the error's text, which may
// name a database's host, user or name (the parts log their errors, and
// GET /v1/sinks, a read, shows a sink's).
func (h *Health) ready(w http.ResponseWriter, r *http.Request) {
	errs := h.down(r.Context())
	if len(errs) == 0 {
		httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ready"})
		return
	}
	down := make(map[string]string, len(errs))
	names := make([]string, 0, len(errs))
	for n, err := range errs {
		down[n] = httpapi.Reason(err)
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Retry-After", "5")
	httpapi.WriteJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable", Down: down, Parts: names})
}
