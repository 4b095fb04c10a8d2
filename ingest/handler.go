package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/lambdaflow/lambdaflow/broker"
)

// retryAfter is the Retry-After (seconds) of 429 and 503 answers: long
// enough for a batch or two to clear, short enough not to idle producers.
const retryAfter = "1"

// handler serves POST /v1/topics/{topic}/events.
type handler struct {
	in      *Ingest
	mux     *http.ServeMux
	bufs    sync.Pool // *[]byte copy buffers for request bodies
	reqBufs sync.Pool // *requestBufs
}

func newHandler(in *Ingest) *handler {
	h := &handler{in: in, mux: http.NewServeMux()}
	h.bufs.New = func() any {
		b := make([]byte, 32<<10)
		return &b
	}
	h.reqBufs.New = func() any { return new(requestBufs) }
	h.mux.HandleFunc("POST /v1/topics/{topic}/events", h.post)
	// Without a method the pattern catches the other methods, so that
	// they get a JSON 405 rather than the mux's plain-text one.
	h.mux.HandleFunc("/v1/topics/{topic}/events", h.notAllowed)
	return h
}

// Handler returns the HTTP handler of POST /v1/topics/{topic}/events. It
// may be mounted on a larger mux under the same pattern.
func (in *Ingest) Handler() http.Handler { return in.handler.mux }

func (h *handler) notAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed; use POST"})
}

func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	in := h.in
	start := in.now()
	name := r.PathValue("topic")
	ts := in.topics[name]
	if ts == nil {
		// The label stays empty: a name from the URL would let any client
		// create label values without bound.
		in.metrics.rejects.WithLabelValues("", reasonUnknownTopic).Inc()
		writeError(w, http.StatusNotFound, errorBody{Error: "unknown topic " + strconv.Quote(name)})
		return
	}
	reject := func(status int, reason string, body errorBody) {
		ts.m.rejects[reason].Inc()
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeError(w, status, body)
	}

	switch ts.auth.check(r) {
	case authMissing:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdaflow"`)
		reject(http.StatusUnauthorized, reasonUnauthorized, errorBody{Error: "missing or invalid bearer token for writes to topic " + strconv.Quote(name)})
		return
	case authReadOnly:
		reject(http.StatusForbidden, reasonUnauthorized, errorBody{Error: "token may read but not write topic " + strconv.Quote(name)})
		return
	}
	if ct := r.Header.Get("Content-Type"); !acceptedType(ct) {
		reject(http.StatusUnsupportedMediaType, reasonInvalid, errorBody{Error: "unsupported Content-Type " + strconv.Quote(ct) + "; use application/json, application/x-ndjson or none (text/plain and application/x-www-form-urlencoded are read as JSON too)"})
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		reject(http.StatusUnsupportedMediaType, reasonInvalid, errorBody{Error: "unsupported Content-Encoding " + strconv.Quote(ce)})
		return
	}
	if !in.Ready() {
		reject(http.StatusServiceUnavailable, reasonUnavailable, errorBody{Error: "ingest is not ready (starting or stopping)"})
		return
	}

	maxBody := in.p.Ingest.MaxBodyBytes
	if r.ContentLength > maxBody {
		reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errorBody{Error: tooLargeMsg(maxBody)})
		return
	}
	body, err := h.readBody(w, r, maxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errorBody{Error: tooLargeMsg(maxBody)})
			return
		}
		reject(http.StatusBadRequest, reasonInvalid, errorBody{Error: "reading the body: " + err.Error()})
		return
	}

	ingestTime := start.UnixMicro()
	bufs := h.reqBufs.Get().(*requestBufs)
	events, derr := ts.dec.decode(body, ingestTime, bufs)
	// Only after the answer: until then the events are in use.
	defer func() {
		bufs.reset(events)
		h.reqBufs.Put(bufs)
	}()
	if derr != nil {
		b := errorBody{Error: derr.Error(), Field: derr.Field, Line: derr.Line}
		if derr.Record >= 0 {
			b.Record = &derr.Record
		}
		in.logger.Debug("ingest: rejected body", "topic", name, "err", derr.Error())
		reject(http.StatusBadRequest, reasonInvalid, b)
		return
	}

	for i := range events {
		if eventBytes(&events[i]) > maxEntryBytes {
			rec := i
			reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errorBody{Error: "record " + strconv.Itoa(i) + ": event larger than a log entry may hold (" + strconv.Itoa(maxEntryBytes) + " bytes)", Record: &rec})
			return
		}
	}
	n := len(events)
	if int64(n) > in.maxInFlight {
		reject(http.StatusRequestEntityTooLarge, reasonTooLarge, errorBody{Error: "request holds " + strconv.Itoa(n) + " events, more than ingest.max_in_flight (" + strconv.FormatInt(in.maxInFlight, 10) + "); split it"})
		return
	}
	if !in.acquire(n) {
		reject(http.StatusTooManyRequests, reasonOverloaded, errorBody{Error: "too many events in flight; retry later"})
		return
	}
	defer in.release(n)

	dedupable := in.assignIDs(events, r.Header.Get("Idempotency-Key"), start)
	results, accepted, err := in.publish(r.Context(), ts, events, dedupable, placeByKey, bufs)
	if err != nil {
		in.logger.Warn("ingest: request failed", "topic", name, "events", n, "err", err)
		const retry = "; events of this request may be durable: retry it with the same ids or Idempotency-Key"
		switch {
		case errors.Is(err, errNotReady):
			reject(http.StatusServiceUnavailable, reasonUnavailable, errorBody{Error: "ingest is not ready (starting or stopping)"})
		case transient(err):
			reject(http.StatusServiceUnavailable, reasonUnavailable, errorBody{Error: "the log is unavailable: " + err.Error() + retry})
		default:
			reject(http.StatusInternalServerError, reasonUnavailable, errorBody{Error: "appending to the log failed: " + err.Error() + retry})
		}
		return
	}
	ts.m.events.Add(float64(accepted))
	ts.m.duplicates.Add(float64(n - accepted))
	ts.m.bytes.Add(float64(len(body)))
	w.Header().Set("Content-Type", "application/json")
	w.Write(appendReply(make([]byte, 0, 32+64*n), accepted, results))
	in.metrics.ackSeconds.Observe(in.now().Sub(start).Seconds())
}

// transient reports whether a publish error is the log being out of reach
// (503, retry later) rather than a fault of ingest or the log (500).
func transient(err error) bool {
	return errors.Is(err, broker.ErrUnavailable) || errors.Is(err, broker.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// readBody reads at most limit bytes of the body into a string. Building
// the string directly saves converting (copying) a byte slice, and events'
// strings are slices of it.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) (string, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	var sb strings.Builder
	if r.ContentLength > 0 {
		sb.Grow(int(r.ContentLength))
	}
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

// errorBody is the JSON of every error answer. Record, Line and Field are
// set for a body that failed decoding or validation.
type errorBody struct {
	Error  string `json:"error"`
	Record *int   `json:"record,omitempty"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, body errorBody) {
	b, err := json.Marshal(body)
	if err != nil { // a struct of strings and ints always marshals
		b = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
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
