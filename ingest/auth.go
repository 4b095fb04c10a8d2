package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authResult is what a request's credentials allow on one topic.
type authResult uint8

const (
	authOK       authResult = iota + 1
	authMissing             // no or unknown token: 401
	authReadOnly            // a read token where a write token is needed: 403
)

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

func (s tokenSet) has(digest *[sha256.Size]byte) bool {
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(s[i][:], digest[:])
	}
	return found == 1
}

// authorizer decides writes to one topic. Writes are open when the topic
// lists no write_tokens. Otherwise the request needs
// "Authorization: Bearer <token>" with one of them; a token that is only
// among auth.read_tokens is recognised but refused (403).
type authorizer struct {
	write tokenSet
	read  tokenSet
}

func (a authorizer) check(r *http.Request) authResult {
	if len(a.write) == 0 {
		return authOK
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return authMissing
	}
	d := sha256.Sum256([]byte(tok))
	if a.write.has(&d) {
		return authOK
	}
	if a.read.has(&d) {
		return authReadOnly
	}
	return authMissing
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
