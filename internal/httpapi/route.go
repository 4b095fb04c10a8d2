package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/lambdaflow/lambdaflow/internal/access"
)

// Access is who may call a route; Auth decides it from the tokens.
type Access uint8

// The kinds of access, from the most open.
const (
	// Public routes need no token: probes and the console's page.
	Public Access = iota
	// Read routes show data: queries, topics, lag, stats, metrics.
	Read
	// Write routes publish to the topic of the {topic} path value.
	Write
	// Admin routes change what the process does: recompute, replay, and
	// every route added later that changes state other than publishing.
	Admin
)

// scope is the token scope acc needs; 0 for Public.
func (acc Access) scope() access.Scope {
	switch acc {
	case Read:
		return access.Read
	case Write:
		return access.Write
	case Admin:
		return access.Admin
	}
	return 0
}

// Route is one endpoint: a ServeMux pattern ("GET /v1/topics", with a
// method unless it catches every method), who may call it and its handler.
type Route struct {
	Pattern string
	Access  Access
	Handler http.Handler
	// Denied, when set, is told of each request the access check refused,
	// after the answer (for the layer's metrics).
	Denied func(r *http.Request, d *Denial)
}

// Handler serves routes, each behind its access check. A path some routes
// serve answers the other methods 405 with Allow and a JSON error. It
// panics, as ServeMux does, on patterns that conflict.
func Handler(auth *Auth, routes []Route) http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path → methods served
	var paths []string
	for _, rt := range routes {
		mux.Handle(rt.Pattern, guard(auth, rt))
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			continue // catches every method itself
		}
		if _, seen := methods[path]; !seen {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
		if method == http.MethodGet {
			methods[path] = append(methods[path], http.MethodHead)
		}
	}
	for _, path := range paths {
		allow := methods[path]
		slices.Sort(allow)
		allow = slices.Compact(allow)
		mux.Handle(path, notAllowed(strings.Join(allow, ", ")))
	}
	return mux
}

func guard(auth *Auth, rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic := ""
		if rt.Access == Write {
			topic = r.PathValue("topic")
		}
		if d := auth.Allow(r, rt.Access, topic); d != nil {
			Deny(w, d)
			if rt.Denied != nil {
				rt.Denied(r, d)
			}
			return
		}
		rt.Handler.ServeHTTP(w, r)
	})
}

func notAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
	})
}
