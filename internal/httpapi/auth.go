package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Auth decides who may do what, from the pipeline's tokens:
//
//   - Read routes need one of auth.read_tokens (none configured: open), in
//     "Authorization: Bearer <token>" or, for links a browser opens
//     (downloads), the token query parameter.
//   - Write routes publish to the topic named by the {topic} path value and
//     need one of its topics[].write_tokens (none: open), in the header
//     only. A read token there is recognised and refused with 403.
//   - Admin routes change what the process does (recompute, replay dead
//     letters); today they take the read tokens.
//
// Every rule about tokens lives here, so that adding a scope changes this
// file and the routes' Access, nothing else.
type Auth struct {
	read  tokenSet
	write map[string]tokenSet // by topic; topics without write tokens are absent
}

// NewAuth returns the access rules of pipeline p.
func NewAuth(p *pipelines.Pipeline) *Auth {
	a := &Auth{read: newTokenSet(p.Auth.ReadTokens), write: map[string]tokenSet{}}
	for _, t := range p.Topics {
		if s := newTokenSet(t.WriteTokens); len(s) > 0 {
			a.write[t.Name] = s
		}
	}
	return a
}

// AllowToken reports whether token grants access (to topic, for Write)
// where the protocol carries the token itself rather than in an HTTP
// header: the Kafka listener's SASL/PLAIN password. An empty token is no
// token: it passes only what is open.
func (a *Auth) AllowToken(token string, access Access, topic string) bool {
	switch access {
	case Public:
		return true
	case Read, Admin:
		return len(a.read) == 0 || a.read.has(token)
	case Write:
		w := a.write[topic]
		return len(w) == 0 || w.has(token)
	}
	return false
}

// Known reports whether token is one of the pipeline's tokens, of any
// scope.
func (a *Auth) Known(token string) bool {
	if a.read.has(token) {
		return true
	}
	found := false
	for _, w := range a.write {
		found = w.has(token) || found // no early exit: constant time per set
	}
	return found
}

// Configured reports whether any token is configured (otherwise every
// route is open).
func (a *Auth) Configured() bool { return len(a.read) > 0 || len(a.write) > 0 }

// Denial is a refused request: the status (401 or 403) and why.
type Denial struct {
	Status  int
	Message string
}

// Allow checks r against the rules of access. For Write, topic is the topic
// written to. It returns nil when r may go on.
func (a *Auth) Allow(r *http.Request, access Access, topic string) *Denial {
	switch access {
	case Public:
		return nil
	case Read, Admin:
		if a.AllowToken(readToken(r), access, topic) {
			return nil
		}
		return &Denial{http.StatusUnauthorized, "a valid bearer token is required (auth.read_tokens)"}
	case Write:
		tok, _ := bearer(r.Header.Get("Authorization"))
		switch {
		case a.AllowToken(tok, Write, topic):
			return nil
		case tok != "" && a.read.has(tok):
			return &Denial{http.StatusForbidden, "token may read but not write topic " + strconv.Quote(topic)}
		}
		return &Denial{http.StatusUnauthorized, "missing or invalid bearer token for writes to topic " + strconv.Quote(topic)}
	}
	return &Denial{http.StatusForbidden, "no access rule for this route"}
}

// open reports whether every request passes access without a token.
func (a *Auth) open(access Access) bool {
	switch access {
	case Public:
		return true
	case Read, Admin:
		return len(a.read) == 0
	case Write:
		return len(a.write) == 0
	}
	return false
}

// Deny answers a refused request: the JSON error, and for a 401 the
// WWW-Authenticate challenge.
func Deny(w http.ResponseWriter, d *Denial) {
	if d.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdaflow"`)
	}
	WriteError(w, d.Status, d.Message)
}

// readToken is the bearer token of the Authorization header, or else the
// token query parameter.
func readToken(r *http.Request) string {
	if tok, ok := bearer(r.Header.Get("Authorization")); ok {
		return tok
	}
	return r.URL.Query().Get("token")
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110 section 11.1).
func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// tokenSet holds digests of tokens. Comparing fixed-size digests in
// constant time, over every token without stopping at a match, keeps a
// prober from learning a token's length or prefix from response times.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	s := make(tokenSet, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			s = append(s, sha256.Sum256([]byte(t)))
		}
	}
	return s
}

func (s tokenSet) has(token string) bool {
	if token == "" {
		return false
	}
	d := sha256.Sum256([]byte(token))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(s[i][:], d[:])
	}
	return found == 1
}
