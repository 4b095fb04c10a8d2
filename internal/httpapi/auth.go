package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/internal/access"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Auth decides who may do what over HTTP. What a token grants is package
// access's rule; this adds how a token arrives and what a browser may do:
//
//   - The token comes in "Authorization: Bearer <token>" only (the scheme
//     in any case). A token in the URL would end up in logs and browser
//     history: a token parameter is refused with 400.
//   - Read routes need read access, Write routes write access to the topic
//     of their {topic} path value, Admin routes admin access. No usable
//     token is 401 with a challenge; a token that is valid but lacks the
//     scope is 403, saying what the token may do.
//   - A request that may change state (any method but GET, HEAD, OPTIONS)
//     sent by a browser from another web origin than the server's own or
//     one of auth.allowed_origins is refused with 403, whatever its token:
//     a page an operator visits must not publish, recompute or replay
//     through the operator's browser (cross-site request forgery).
type Auth struct {
	tokens *access.Tokens
	cross  *http.CrossOriginProtection
}

// NewAuth returns the access rules of pipeline p, whose auth.allowed_origins
// were validated.
func NewAuth(p *pipelines.Pipeline) *Auth {
	a := &Auth{tokens: access.New(p), cross: http.NewCrossOriginProtection()}
	for _, o := range p.Auth.AllowedOrigins {
		a.cross.AddTrustedOrigin(o) // validated: cannot fail
	}
	return a
}

// Tokens returns the token rules, for other protocols.
func (a *Auth) Tokens() *access.Tokens { return a.tokens }

// Denial is a refused request: the status (400, 401 or 403) and why.
type Denial struct {
	Status  int
	Message string
}

// Allow checks r against the rules. For Write, topic is the topic written
// to. It returns nil when r may go on.
func (a *Auth) Allow(r *http.Request, acc Access, topic string) *Denial {
	if d := a.checkRequest(r); d != nil {
		return d
	}
	scope := acc.scope()
	if scope == 0 || a.tokens.Open(scope, topic) {
		return nil
	}
	tok, ok := Bearer(r.Header.Get("Authorization"))
	if ok && a.tokens.May(tok, scope, topic) {
		return nil
	}
	read, admin, writes := a.tokens.Scopes(tok)
	if !read && !admin && !writes {
		msg := "a valid bearer token is required"
		if !ok && r.Header.Get("Authorization") != "" {
			msg = `the Authorization header must be "Bearer <token>"`
		}
		return &Denial{http.StatusUnauthorized, msg + " (" + configKey(scope) + ")"}
	}
	var may string
	switch {
	case admin:
		may = "may read and administer"
	case read && writes:
		may = "may read and write to other topics"
	case read:
		may = "may read"
	default:
		may = "may write to other topics"
	}
	var wanted string
	switch scope {
	case access.Read:
		wanted = "read"
	case access.Write:
		wanted = "write to topic " + strconv.Quote(topic)
	case access.Admin:
		wanted = "administer (recompute, replay)"
	}
	return &Denial{http.StatusForbidden, "token " + may + " but not " + wanted + " (" + configKey(scope) + ")"}
}

// checkRequest applies the rules every route shares, open ones included:
// a query string that parses, no token in it, no state change from a
// foreign web page.
func (a *Auth) checkRequest(r *http.Request) *Denial {
	// Handlers read r.URL.Query(), which drops what does not parse (a raw
	// ';' would silently drop a filter): refuse such a query instead.
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return &Denial{http.StatusBadRequest, "the query string does not parse: " + err.Error()}
		}
		if q.Has("token") {
			return &Denial{http.StatusBadRequest, `parameter "token": tokens are accepted only in the header "Authorization: Bearer <token>"`}
		}
	}
	if err := a.cross.Check(r); err != nil {
		from := r.Header.Get("Origin")
		if from == "" {
			from = "another site"
		}
		return &Denial{http.StatusForbidden, "cross-origin request from " + from + " refused: only this server's own pages and auth.allowed_origins may change state"}
	}
	return nil
}

// configKey names where the tokens of scope are configured.
func configKey(scope access.Scope) string {
	switch scope {
	case access.Write:
		return "topics[].write_tokens"
	case access.Admin:
		return "auth.admin_tokens"
	}
	return "auth.read_tokens"
}

// Deny answers a refused request: the JSON error, and for a 401 the
// WWW-Authenticate challenge.
func Deny(w http.ResponseWriter, d *Denial) {
	if d.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdaflow"`)
	}
	WriteError(w, d.Status, d.Message)
}

// Bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110 section 11.1). Protocols with
// headers of their own (NATS) read their Authorization header with it too.
func Bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}
