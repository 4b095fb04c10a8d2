package ingest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// retryAfter is the Retry-After (seconds) of 429 and 503 answers: long
// enough for a batch or two to clear, short enough not to idle producers.
const retryAfter = "1"

// handler serves POST /v1/topics/{topic}/events.
type handler struct {
	in      *Ingest
	bufs    sync.Pool // *[]byte copy buffers for request bodies
	reqBufs sync.Pool // *requestBufs
}

func newHandler(in *Ingest) *handler {
	h := &handler{in: in}
	h.bufs.New = func() any {
		b := make([]byte, 32<<10)
		return &b
	}
	h.reqBufs.New = func() any { return new(requestBufs) }
	return h
}

// Routes returns ingest's endpoint, POST /v1/topics/{topic}/events, a
// write to the topic of the path: the topic's write tokens guard it, and
// each refusal counts as an "unauthorized" reject of the topic.
func (in *Ingest) Routes() []httpapi.Route {
	return []httpapi.Route{{
		Pattern: "POST /v1/topics/{topic}/events",
		Access:  httpapi.Write,
		Handler: http.HandlerFunc(in.handler.post),
		Denied: func(r *http.Request, _ *httpapi.Denial) {
			if ts := in.topics[r.PathValue("topic")]; ts != nil {
				ts.m.rejects[reasonUnauthorized].Inc()
			}
		},
	}}
}

// Checks returns ingest's readiness: not ready while it rebuilds the dedup
// index at start (or once it stops).
func (in *Ingest) Checks() []httpapi.Check {
	return []httpapi.Check{{Name: "ingest", Ready: func(context.Context) error {
		if !in.Ready() {
			return &httpapi.ReasonError{Err: errors.New("rebuilding the dedup index"), Why: "starting"}
		}
		return nil
	}}}
}

func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	in := h.in
	start := in.now()
	name := r.PathValue("topic")
	ts := in.topics[name]
	if ts == nil {
		// The label stays empty: a name from the URL would let any client
		// create label values without bound.
		in.metrics.unknownTopic.Inc()
		if _, refusal, ok := in.p.TopicKind(name); ok {
			// A view's rows or a sink's dead letters: the log has the
			// topic, and reading it is fine, but only the pipeline writes it.
			w.Header().Set("Allow", http.MethodGet)
			httpapi.WriteError(w, http.StatusMethodNotAllowed, refusal)
			return
		}
		httpapi.WriteUnknown(w, "topic", name, in.p.TopicNames())
		return
	}
	reject := func(status int, reason string, body api.Error) {
		ts.m.rejects[reason].Inc()
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusInsufficientStorage {
			w.Header().Set("Retry-After", retryAfter)
		}
		httpapi.WriteErrorBody(w, status, body)
	}

	if ct := r.Header.Get("Content-Type"); !acceptedType(ct) {
		reject(http.StatusUnsupportedMediaType, reasonInvalid, api.Error{Error: "unsupported Content-Type " + strconv.Quote(ct) + "; use application/json, application/x-ndjson or none (text/plain and application/x-www-form-urlencoded are read as JSON too)"})
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		reject(http.StatusUnsupportedMediaType, reasonInvalid, api.Error{Error: "unsupported Content-Encoding " + strconv.Quote(ce)})
		return
	}
	if !in.Ready() {
		reject(http.StatusServiceUnavailable, reasonUnavailable, api.Error{Error: "ingest is not ready (starting or stopping)"})
		return
	}

	// From here the request counts as company for the topic's batchers
	// until its events are submitted to them.
	arr := ts.arrivals.arrive()
	defer arr.leave()

	maxBody := in.p.Ingest.MaxBodyBytes
	if r.ContentLength > maxBody {
		reject(http.StatusRequestEntityTooLarge, reasonTooLarge, api.Error{Error: tooLargeMsg(maxBody)})
		return
	}
	body, err := h.readBody(w, r, maxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(http.StatusRequestEntityTooLarge, reasonTooLarge, api.Error{Error: tooLargeMsg(maxBody)})
			return
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			reject(http.StatusRequestTimeout, reasonInvalid, api.Error{Error: "the request body did not arrive within http.read_timeout (" + in.p.HTTP.ReadTimeout.String() + ")"})
			return
		}
		reject(http.StatusBadRequest, reasonInvalid, api.Error{Error: "reading the body: " + err.Error()})
		return
	}

	status, reason, reply, eb := h.publishBody(r.Context(), ts, body, r.Header.Get("Idempotency-Key"), start, arr)
	if status != http.StatusOK {
		reject(status, reason, eb)
		return
	}
	httpapi.WriteRaw(w, http.StatusOK, reply)
}

// publishBody decodes, validates and publishes one request body (JSON
// object, array or NDJSON) to topic ts, the common part of HTTP ingest and
// the NATS subject. It returns 200 and the answer, or the error status,
// the reject reason (for the metric) and the error body. arr, the
// request's count in its topic's arrivals, is left once its events are
// submitted, or at the latest on return.
func (h *handler) publishBody(ctx context.Context, ts *topicState, body, idempotencyKey string, start time.Time, arr *arrival) (int, string, []byte, api.Error) {
	in := h.in
	defer arr.leave()
	name := ts.topic.Name
	ingestTime := start.UnixMicro()
	bufs := h.reqBufs.Get().(*requestBufs)
	events, derr := ts.dec.decode(body, ingestTime, bufs)
	// Only after the answer: until then the events are in use.
	defer func() {
		bufs.reset(events)
		h.reqBufs.Put(bufs)
	}()
	if derr != nil {
		b := api.Error{Error: derr.Error(), Field: derr.Field, Line: derr.Line}
		if derr.Record >= 0 {
			b.Record = &derr.Record
		}
		in.logger.Debug("ingest: rejected body", "topic", name, "err", derr.Error())
		return http.StatusBadRequest, reasonInvalid, nil, b
	}

	for i := range events {
		if eventBytes(&events[i]) > maxEntryBytes {
			rec := i
			return http.StatusRequestEntityTooLarge, reasonTooLarge, nil, api.Error{Error: "record " + strconv.Itoa(i) + ": event larger than a log entry may hold (" + strconv.Itoa(maxEntryBytes) + " bytes)", Record: &rec}
		}
	}
	n := len(events)
	if int64(n) > in.maxInFlight {
		return http.StatusRequestEntityTooLarge, reasonTooLarge, nil, api.Error{Error: "request holds " + strconv.Itoa(n) + " events, more than ingest.max_in_flight (" + strconv.FormatInt(in.maxInFlight, 10) + "); split it"}
	}
	if !in.acquire(n) {
		return http.StatusTooManyRequests, reasonOverloaded, nil, api.Error{Error: "too many events in flight; retry later"}
	}
	defer in.release(n)

	dedupable := in.assignIDs(events, idempotencyKey, start)
	results, accepted, err := in.publish(ts, events, dedupable, placeByKey, bufs, arr)
	if err != nil {
		in.logger.Warn("ingest: request failed", "topic", name, "events", n, "err", err)
		const retry = "; events of this request may be durable: retry it with the same ids or Idempotency-Key"
		switch {
		case errors.Is(err, errNotReady):
			return http.StatusServiceUnavailable, reasonUnavailable, nil, api.Error{Error: "ingest is not ready (starting or stopping)"}
		case errors.Is(err, broker.ErrDiskFull):
			// The server's paths and free space are for its log, not for
			// the client.
			return http.StatusInsufficientStorage, reasonDiskFull, nil, api.Error{Error: "the log's disk is full: appends resume once space is freed" + retry}
		case transient(err):
			return http.StatusServiceUnavailable, reasonUnavailable, nil, api.Error{Error: "the log is unavailable: " + err.Error() + retry}
		default:
			return http.StatusInternalServerError, reasonUnavailable, nil, api.Error{Error: "appending to the log failed: " + err.Error() + retry}
		}
	}
	ts.m.events.Add(float64(accepted))
	ts.m.duplicates.Add(float64(n - accepted))
	ts.m.bytes.Add(float64(len(body)))
	in.metrics.ackSeconds.Observe(in.now().Sub(start).Seconds())
	return http.StatusOK, "", appendReply(make([]byte, 0, 32+64*n), accepted, results), api.Error{}
}

// transient reports whether a publish error is the log being out of reach
// (503, retry later) rather than a fault of ingest or the log (500).
func transient(err error) bool {
	return errors.Is(err, broker.ErrUnavailable) || errors.Is(err, broker.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// readBody reads at most limit bytes of the body into a string. Building
// the string directly saves converting (copying) a byte slice, and events'
// strings are slices of it. The string grows with the bytes that arrive,
// never sized by Content-Length in advance: a client announcing a large
// body and sending nothing must not cost the memory it announced.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) (string, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	var sb strings.Builder
	bp := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(bp)
	// MaxBytesReader has no WriterTo and Builder no ReaderFrom, so this
	// copies through the pooled buffer and allocates nothing else.
	_, err := io.CopyBuffer(&sb, rd, *bp)
	return sb.String(), err
}

func tooLargeMsg(limit int64) string {
	return "request body larger than ingest.max_body_bytes (" + strconv.FormatInt(limit, 10) + " bytes)"
}

// acceptedType reports whether a Content-Type is one ingest reads. The body
// format is detected from the content either way. Besides the JSON types it
// takes application/x-www-form-urlencoded, because that is what `curl -d`
// sends when told nothing, and text/plain: a body of either is read as JSON
// like one without a type.
func acceptedType(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	for _, ok := range []string{"application/json", "application/x-ndjson", "application/x-www-form-urlencoded", "text/plain"} {
		if strings.EqualFold(ct, ok) {
			return true
		}
	}
	return false
}

// appendReply appends the 200 answer. It is written by hand: at 100
// results per request, encoding/json's reflection would cost more than
// the rest of the answer.
func appendReply(b []byte, accepted int, results []result) []byte {
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(accepted), 10)
	b = append(b, `,"results":[`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(r.partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, r.offset, 10)
		b = append(b, `,"duplicate":`...)
		b = strconv.AppendBool(b, r.duplicate)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}
