package console

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// ReadAuth guards read endpoints with bearer tokens. With no tokens
// configured reads are open.
type ReadAuth struct {
	tokens [][]byte
}

// NewReadAuth returns a guard accepting any of tokens.
func NewReadAuth(tokens []string) *ReadAuth {
	a := &ReadAuth{}
	for _, t := range tokens {
		if t != "" {
			a.tokens = append(a.tokens, []byte(t))
		}
	}
	return a
}

// Allowed reports whether r carries an accepted token (or none is needed).
// The token comes from the Authorization header, or from the token query
// parameter for links a browser opens (downloads).
func (a *ReadAuth) Allowed(r *http.Request) bool {
	if len(a.tokens) == 0 {
		return true
	}
	got := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimPrefix(h, "Bearer ")
	} else {
		got = r.URL.Query().Get("token")
	}
	ok := 0
	for _, t := range a.tokens {
		// Compare against every token so timing does not reveal which matched.
		ok |= subtle.ConstantTimeCompare([]byte(got), t)
	}
	return ok == 1
}

// Wrap returns h guarded by the read tokens: 401 without a valid token.
func (a *ReadAuth) Wrap(h http.Handler) http.Handler {
	if len(a.tokens) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lambdaflow"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required (auth.read_tokens)")
			return
		}
		h.ServeHTTP(w, r)
	})
}
