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

// TokenSet holds digests of tokens; other protocols (Kafka's SASL/PLAIN)
// check their credentials with it too, so that a token means the same
// everywhere. Comparing fixed-size digests in
// constant time, over every token without stopping at a match, keeps a
// prober from learning a token's length or prefix from response times.
type TokenSet [][sha256.Size]byte

// NewTokenSet returns the set of the non-empty tokens.
func NewTokenSet(tokens []string) TokenSet {
	s := make(TokenSet, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			s = append(s, sha256.Sum256([]byte(t)))
		}
	}
	return s
}

// Contains reports whether token is in the set.
func (s TokenSet) Contains(token string) bool {
	d := sha256.Sum256([]byte(token))
	return s.has(&d)
}

// Empty reports whether the set holds no token (the resource is open).
func (s TokenSet) Empty() bool { return len(s) == 0 }

func (s TokenSet) has(digest *[sha256.Size]byte) bool {
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
	write TokenSet
	read  TokenSet
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
