package groups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// Routes returns the group endpoints; all need the read scope (they read
// topics).
func (g *Groups) Routes() []httpapi.Route {
	r := func(pattern string, h http.HandlerFunc) httpapi.Route {
		return httpapi.Route{Pattern: pattern, Access: httpapi.Read, Handler: h}
	}
	return []httpapi.Route{
		r("GET /v1/groups", g.getGroups),
		r("GET /v1/groups/{group}", g.getGroup),
		r("POST /v1/groups/{group}/members", g.postMember),
		r("DELETE /v1/groups/{group}/members/{member}", g.deleteMember),
		r("POST /v1/groups/{group}/members/{member}/heartbeat", g.postHeartbeat),
		r("GET /v1/groups/{group}/members/{member}/events", g.getEvents),
		r("POST /v1/groups/{group}/members/{member}/commit", g.postCommit),
	}
}

type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &badRequestError{fmt.Sprintf(format, args...)}
}

type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// fail answers err with its status.
func (g *Groups) fail(w http.ResponseWriter, err error) {
	var bad *badRequestError
	var conflict *conflictError
	switch {
	case errors.As(err, &bad):
		httpapi.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &conflict):
		httpapi.WriteError(w, http.StatusConflict, err.Error())
	case errors.Is(err, errNotFound):
		httpapi.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, broker.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, "the log is unavailable: "+err.Error())
	default:
		g.logger.Warn("groups: request failed", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// NewMemberID makes a member id, for the HTTP groups and the Kafka
// listener's alike: the client's name ("member" when it gives none), a
// dash, and 16 random bytes in hex.
func NewMemberID(client string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if client == "" {
		client = "member"
	}
	return client + "-" + hex.EncodeToString(b[:])
}

func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}

func (g *Groups) postMember(w http.ResponseWriter, r *http.Request) {
	var j api.Join
	if err := decodeBody(r, &j); err != nil {
		g.fail(w, err)
		return
	}
	m, err := g.join(r.Context(), r.PathValue("group"), j)
	if err != nil {
		g.fail(w, err)
		return
	}
	w.Header().Set("Location", "/v1/groups/"+m.Group+"/members/"+m.Member)
	httpapi.WriteJSON(w, http.StatusCreated, m)
}

func (g *Groups) deleteMember(w http.ResponseWriter, r *http.Request) {
	if err := g.leave(r.Context(), r.PathValue("group"), r.PathValue("member")); err != nil {
		g.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Groups) postHeartbeat(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	s, m, err := g.touch(r.Context(), group, r.PathValue("member"))
	if err != nil {
		g.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, membership(group, s, m))
}

func (g *Groups) postCommit(w http.ResponseWriter, r *http.Request) {
	var c api.Commit
	if err := decodeBody(r, &c); err != nil {
		g.fail(w, err)
		return
	}
	out, err := g.commit(r.Context(), r.PathValue("group"), r.PathValue("member"), c)
	if err != nil {
		g.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// getEvents delivers the member's events: NDJSON (one api.GroupEvent a
// line) after a long poll, or, with Accept: text/event-stream or
// ?format=sse, a stream of server-sent events until the client goes away.
func (g *Groups) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultMax
	if v := httpapi.Last(q, "max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMax {
			g.fail(w, badRequest("max must be 1 to %d, got %q", maxMax, v))
			return
		}
		limit = n
	}
	wait := 10 * time.Second
	if v := httpapi.Last(q, "wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxWait {
			g.fail(w, badRequest("wait must be a duration from 0s to %s, got %q", maxWait, v))
			return
		}
		wait = d
	}
	group, id := r.PathValue("group"), r.PathValue("member")
	if httpapi.Last(q, "format") == "sse" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		g.stream(w, r, group, id, limit)
		return
	}
	events, s, err := g.poll(r.Context(), group, id, limit, wait)
	if err != nil {
		g.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Lambdaflow-Generation", strconv.FormatInt(s.Generation, 10))
	w.WriteHeader(http.StatusOK)
	var b []byte
	for _, e := range events {
		b, _ = json.Marshal(e)
		w.Write(append(b, '\n'))
	}
}

// sseWait is how long one round of a stream waits for events; an idle
// round sends a comment, which keeps proxies from closing the stream.
const sseWait = 15 * time.Second

// stream sends server-sent events: "assignment" (data: api.Membership)
// first and after every rebalance, "event" (id: topic/partition/offset,
// data: api.GroupEvent) for each event, and "gone" when the member was
// removed. Each round counts as a heartbeat.
func (g *Groups) stream(w http.ResponseWriter, r *http.Request, group, id string, limit int) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		httpapi.WriteError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	ctx := r.Context()
	s, m, err := g.touch(ctx, group, id)
	if err != nil {
		g.fail(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(event, eventID string, v any) {
		b, _ := json.Marshal(v)
		if eventID != "" {
			fmt.Fprintf(w, "id: %s\n", eventID)
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	gen := s.Generation
	send("assignment", "", membership(group, s, m))
	flusher.Flush()
	for ctx.Err() == nil {
		events, s, err := g.poll(ctx, group, id, limit, sseWait)
		if err != nil {
			if errors.Is(err, errNotFound) {
				send("gone", "", api.Error{Error: err.Error()})
				flusher.Flush()
			} else if ctx.Err() == nil {
				g.logger.Warn("groups: stream", "group", group, "member", id, "err", err)
				send("error", "", api.Error{Error: err.Error()})
				flusher.Flush()
			}
			return
		}
		if s.Generation != gen {
			gen = s.Generation
			if m := s.member(id); m != nil {
				send("assignment", "", membership(group, s, m))
			}
		}
		for _, e := range events {
			send("event", e.Topic+"/"+strconv.Itoa(e.Partition)+"/"+strconv.FormatInt(e.Offset, 10), e)
		}
		if len(events) == 0 {
			io.WriteString(w, ": idle\n\n")
		}
		flusher.Flush()
	}
}

func (g *Groups) getGroups(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lag, err := g.log.Lag(ctx)
	if err != nil {
		g.fail(w, err)
		return
	}
	names, err := g.list(ctx)
	if err != nil {
		g.fail(w, err)
		return
	}
	out := api.Groups{Groups: []api.Group{}}
	for _, name := range names {
		d, ok, err := g.describe(ctx, name, lag)
		if err != nil {
			g.fail(w, err)
			return
		}
		if ok {
			out.Groups = append(out.Groups, d)
		}
	}
	if g.others != nil {
		more, err := g.others.Groups(ctx)
		if err != nil {
			g.fail(w, err)
			return
		}
		out.Groups = append(out.Groups, more...)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// getGroup answers one group: the HTTP group of that name, else the Kafka
// group (?protocol=kafka picks the Kafka one when both exist).
func (g *Groups) getGroup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("group")
	lag, err := g.log.Lag(ctx)
	if err != nil {
		g.fail(w, err)
		return
	}
	if httpapi.Last(r.URL.Query(), "protocol") != "kafka" {
		d, ok, err := g.describe(ctx, name, lag)
		if err != nil {
			g.fail(w, err)
			return
		}
		if ok {
			httpapi.WriteJSON(w, http.StatusOK, d)
			return
		}
	}
	if g.others != nil {
		more, err := g.others.Groups(ctx)
		if err != nil {
			g.fail(w, err)
			return
		}
		for _, d := range more {
			if d.Group == name {
				httpapi.WriteJSON(w, http.StatusOK, d)
				return
			}
		}
	}
	httpapi.WriteError(w, http.StatusNotFound, "unknown group "+strconv.Quote(name))
}
