package kafka

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/ingest"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// authorizer maps SASL/PLAIN passwords to the pipeline's tokens: a token
// of auth.read_tokens may fetch, list offsets and use consumer groups; a
// token of a topic's write_tokens may produce to that topic. Resources
// without tokens are open, with or without SASL, as over HTTP. The user
// name is not checked (clients must send one; any will do).
type authorizer struct {
	read  ingest.TokenSet
	write map[string]ingest.TokenSet
	any   bool // some token is configured
}

// scopes is what an authenticated connection may do.
type scopes struct {
	read  bool
	write map[string]bool
}

func newAuthorizer(p *pipelines.Pipeline) *authorizer {
	a := &authorizer{read: ingest.NewTokenSet(p.Auth.ReadTokens), write: map[string]ingest.TokenSet{}}
	a.any = !a.read.Empty()
	for i := range p.Topics {
		t := &p.Topics[i]
		a.write[t.Name] = ingest.NewTokenSet(t.WriteTokens)
		a.any = a.any || !a.write[t.Name].Empty()
	}
	return a
}

// scopesOf returns the scopes of token, or nil when it grants nothing.
func (a *authorizer) scopesOf(token string) *scopes {
	if !a.any {
		return &scopes{read: true} // auth is off: any credentials do
	}
	sc := &scopes{read: a.read.Contains(token), write: map[string]bool{}}
	granted := sc.read
	for name, ts := range a.write {
		if ts.Contains(token) {
			sc.write[name] = true
			granted = true
		}
	}
	if !granted {
		return nil
	}
	return sc
}

func (c *conn) allowedRead() bool {
	return c.s.auth.read.Empty() || (c.scopes != nil && c.scopes.read)
}

func (c *conn) allowedWrite(topic string) bool {
	return c.s.auth.write[topic].Empty() || (c.scopes != nil && c.scopes.write[topic])
}

// allowedGroup: consumer groups need the read scope.
func (c *conn) allowedGroup() bool { return c.allowedRead() }

const mechPlain = "PLAIN"

func (c *conn) saslHandshake(r *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.SupportedMechanisms = []string{mechPlain}
	if r.Mechanism != mechPlain {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp
	}
	if c.scopes != nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	c.saslMech = mechPlain
	return resp
}

// saslAuthenticate checks PLAIN credentials (RFC 4616: authzid NUL authcid
// NUL password). A failure is answered, then the connection is closed, as
// Kafka does.
func (c *conn) saslAuthenticate(r *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode = code
		resp.ErrorMessage = &msg
		c.closeAfter = msg
		c.s.metrics.authFailures.Inc()
		c.s.logger.Info("kafka: SASL authentication failed", "remote", c.remote, "client", c.clientID, "reason", msg)
		return resp, nil
	}
	if c.saslMech != mechPlain || c.scopes != nil {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake for PLAIN")
	}
	parts := bytes.Split(r.SASLAuthBytes, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return fail(kerr.SaslAuthenticationFailed.Code, "malformed PLAIN credentials")
	}
	sc := c.s.auth.scopesOf(string(parts[2]))
	if sc == nil {
		return fail(kerr.SaslAuthenticationFailed.Code, "invalid credentials: the password must be one of the pipeline's tokens")
	}
	c.scopes = sc
	return resp, nil
}
