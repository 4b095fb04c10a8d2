// Package access decides what a token may do in a pipeline: read (queries,
// the log's read API, metrics), write to a topic (publish), or administer
// (recompute views, replay dead letters: anything that changes what the
// process does). It knows tokens and scopes only; how a token arrives
// (an HTTP header, Kafka's SASL/PLAIN) is the protocol's business, and
// every protocol asks here so that a token means the same everywhere.
//
// The rules, from the pipeline file:
//
//   - read: a token of auth.read_tokens or auth.admin_tokens; open when
//     auth.read_tokens is empty.
//   - write to topic T: a token of topics[T].write_tokens; open when T has
//     none.
//   - admin: a token of auth.admin_tokens; open only when the pipeline has
//     no token at all (no read, write or admin token anywhere), so that
//     guarding reads or writes never leaves recomputation and replay open.
//
// Tokens are kept and compared as SHA-256 digests in constant time, over
// every token without stopping at a match, so that timing tells a prober
// neither a token's length nor its prefix.
package access

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Scope is a kind of access.
type Scope uint8

// The scopes.
const (
	Read Scope = iota + 1
	Write
	Admin
)

func (s Scope) String() string {
	switch s {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return "unknown"
}

// Tokens holds a pipeline's tokens by scope. It is immutable and safe for
// concurrent use.
type Tokens struct {
	read  digests // auth.read_tokens
	admin digests // auth.admin_tokens
	write map[string]digests
	// readTopic are topics[].read_tokens: tokens that read one topic
	// through SQL (its lake, its views and their sink tables).
	readTopic map[string]digests
	any       bool // some token is configured
}

// New returns the tokens of pipeline p.
func New(p *pipelines.Pipeline) *Tokens {
	t := &Tokens{read: newDigests(p.Auth.ReadTokens), admin: newDigests(p.Auth.AdminTokens), write: map[string]digests{}}
	t.any = len(t.read) > 0 || len(t.admin) > 0
	t.readTopic = map[string]digests{}
	for _, tp := range p.Topics {
		if d := newDigests(tp.WriteTokens); len(d) > 0 {
			t.write[tp.Name] = d
			t.any = true
		}
		if d := newDigests(tp.ReadTokens); len(d) > 0 {
			t.readTopic[tp.Name] = d
			t.any = true
		}
	}
	return t
}

// TopicReads returns the topics token reads by topics[].read_tokens (none
// for the empty token). A token of the read scope reads every topic
// besides; May says that.
func (t *Tokens) TopicReads(token string) map[string]bool {
	if token == "" {
		return nil
	}
	d := sha256.Sum256([]byte(token))
	var out map[string]bool
	for topic, s := range t.readTopic {
		if s.has(&d) { // every set checked whole: no early exit
			if out == nil {
				out = map[string]bool{}
			}
			out[topic] = true
		}
	}
	return out
}

// Open reports whether scope needs no token (for Write: on topic).
func (t *Tokens) Open(scope Scope, topic string) bool {
	switch scope {
	case Read:
		return len(t.read) == 0
	case Write:
		return len(t.write[topic]) == 0
	case Admin:
		return !t.any
	}
	return false
}

// May reports whether token grants scope (for Write: on topic). An open
// scope is granted to any token, the empty one included.
func (t *Tokens) May(token string, scope Scope, topic string) bool {
	if t.Open(scope, topic) {
		return true
	}
	if token == "" {
		return false
	}
	d := sha256.Sum256([]byte(token))
	switch scope {
	case Read:
		// Either set is checked whole: which one matched must not show
		// in the time taken.
		r, a := t.read.has(&d), t.admin.has(&d)
		return r || a
	case Write:
		return t.write[topic].has(&d)
	case Admin:
		return t.admin.has(&d)
	}
	return false
}

// Any reports whether the pipeline has any token (otherwise everything is
// open).
func (t *Tokens) Any() bool { return t.any }

// Known reports whether token is one of the pipeline's tokens, of any
// scope: a protocol that authenticates a connection once (Kafka's
// SASL/PLAIN) refuses unknown ones, then asks May for each request.
func (t *Tokens) Known(token string) bool {
	r, a, w := t.Scopes(token)
	return r || a || w
}

// Scopes returns what token may do beyond the open scopes, for messages
// that tell a client why it was refused: whether it is a read or an admin
// token, and whether it may write to some topic.
func (t *Tokens) Scopes(token string) (read, admin, writeSome bool) {
	if token == "" {
		return false, false, false
	}
	d := sha256.Sum256([]byte(token))
	read, admin = t.read.has(&d), t.admin.has(&d)
	for _, w := range t.write {
		writeSome = w.has(&d) || writeSome
	}
	return read, admin, writeSome
}

// digests are the SHA-256 digests of a set of tokens.
type digests [][sha256.Size]byte

func newDigests(tokens []string) digests {
	s := make(digests, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			s = append(s, sha256.Sum256([]byte(t)))
		}
	}
	return s
}

func (s digests) has(d *[sha256.Size]byte) bool {
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(s[i][:], d[:])
	}
	return found == 1
}
