package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/access"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// Server is what publishing over NATS needs of the log (a *broker.Broker).
type Server interface {
	// Serve answers requests on a subject in a queue group until ctx ends.
	Serve(ctx context.Context, subject, queue string, fn func(context.Context, broker.Request) broker.Reply) error
	// PublishSubject is the subject of a topic's publishes.
	PublishSubject(topic string) string
}

// natsQueue is the queue group of ingest processes: each request is
// answered by one of them.
const natsQueue = "lambdaflow-ingest"

// ServeNATS lets NATS-native services publish with a request to
// <prefix>.publish.<topic> (lf.publish.metrics): the payload is a body as
// POST /v1/topics/{topic}/events takes it (a JSON object, an array or
// NDJSON), decoded, validated, deduplicated and made durable exactly the
// same way, and the reply is the same JSON as the HTTP answer, with the
// HTTP status in the header Lf-Status (200 once every event is durable).
// The headers Idempotency-Key and, for topics with write tokens,
// "Authorization: Bearer <token>" work as over HTTP. A plain publish (no
// reply subject) is appended the same way, but nobody learns the outcome.
// It returns when ctx is done and every request taken has its answer.
func (in *Ingest) ServeNATS(ctx context.Context, srv Server) error {
	tokens := access.New(in.p)
	prefix := strings.TrimSuffix(srv.PublishSubject("x"), "x")
	in.logger.Info("ingest: publishing over NATS", "subject", prefix+"<topic>")
	return srv.Serve(ctx, prefix+"*", natsQueue, func(ctx context.Context, r broker.Request) broker.Reply {
		return in.natsPublish(ctx, tokens, strings.TrimPrefix(r.Subject, prefix), r)
	})
}

func (in *Ingest) natsPublish(ctx context.Context, tokens *access.Tokens, name string, r broker.Request) broker.Reply {
	start := in.now()
	fail := func(status int, body api.Error) broker.Reply {
		b, _ := json.Marshal(body) // strings and ints always marshal
		return broker.Reply{Status: status, Data: append(b, '\n')}
	}
	ts := in.topics[name]
	if ts == nil {
		in.metrics.unknownTopic.Inc()
		return fail(http.StatusNotFound, api.Error{Error: "unknown topic " + strconv.Quote(name)})
	}
	header := func(k string) string {
		if v := r.Header[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	tok, _ := httpapi.Bearer(header("Authorization"))
	if !tokens.May(tok, access.Write, name) {
		ts.m.rejects[reasonUnauthorized].Inc()
		if tokens.Known(tok) {
			return fail(http.StatusForbidden, api.Error{Error: "token may not write to topic " + strconv.Quote(name) + " (topics[].write_tokens)"})
		}
		return fail(http.StatusUnauthorized, api.Error{Error: "a valid bearer token is required in the header \"Authorization: Bearer <token>\" (topics[].write_tokens)"})
	}
	if !in.Ready() {
		ts.m.rejects[reasonUnavailable].Inc()
		return fail(http.StatusServiceUnavailable, api.Error{Error: "ingest is not ready (starting or stopping)"})
	}
	if int64(len(r.Data)) > in.p.Ingest.MaxBodyBytes {
		ts.m.rejects[reasonTooLarge].Inc()
		return fail(http.StatusRequestEntityTooLarge, api.Error{Error: tooLargeMsg(in.p.Ingest.MaxBodyBytes)})
	}
	status, reason, reply, eb := in.handler.publishBody(ctx, ts, string(r.Data), header("Idempotency-Key"), start, ts.arrivals.arrive())
	if status != http.StatusOK {
		ts.m.rejects[reason].Inc()
		return fail(status, eb)
	}
	return broker.Reply{Status: http.StatusOK, Data: reply}
}
