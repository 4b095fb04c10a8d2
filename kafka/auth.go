package kafka

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/internal/access"
)

// Authorization maps SASL/PLAIN passwords to the pipeline's tokens, with
// the same rules as the HTTP API (package access holds them): a token with
// the read scope (auth.read_tokens, auth.admin_tokens) may fetch, list
// offsets and use consumer groups; a token of a topic's write_tokens may
// produce to that topic. What has no tokens is open, with or without SASL,
// as over HTTP. The user name is not checked (clients must send one; any
// will do).

// allowedRead: fetching, offsets and groups need the read scope.
func (c *conn) allowedRead() bool {
	return c.s.tokens.May(c.token, access.Read, "")
}

func (c *conn) allowedWrite(topic string) bool {
	return c.s.tokens.May(c.token, access.Write, topic)
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
	if c.authenticated {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	c.saslMech = mechPlain
	return resp
}

// saslAuthenticate checks PLAIN credentials (RFC 4616: authzid NUL authcid
// NUL password). A password that is none of the pipeline's tokens is
// answered SASL_AUTHENTICATION_FAILED, then the connection is closed, as
// Kafka does; with no tokens configured any password is accepted.
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
	if c.saslMech != mechPlain || c.authenticated {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake for PLAIN")
	}
	parts := bytes.Split(r.SASLAuthBytes, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return fail(kerr.SaslAuthenticationFailed.Code, "malformed PLAIN credentials")
	}
	token := string(parts[2])
	if c.s.tokens.Any() && !c.s.tokens.Known(token) {
		return fail(kerr.SaslAuthenticationFailed.Code, "invalid credentials: the password must be one of the pipeline's tokens")
	}
	c.token, c.authenticated = token, true
	return resp, nil
}
