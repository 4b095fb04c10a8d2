package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Log is what the console reads from the broker.
type Log interface {
	Topics(ctx context.Context) ([]api.Topic, error)
	Lag(ctx context.Context) ([]api.Lag, error)
	FetchBudget(ctx context.Context, topic string, partition int, from broker.Position, max, maxBytes int) ([]broker.Entry, error)
}

// API serves the read API over the log: GET /v1/topics, GET /v1/lag and the
// message browser GET /v1/topics/{topic}/events.
type API struct {
	p      *pipelines.Pipeline
	log    Log
	topics map[string]pipelines.Topic // every log topic by name
	names  []string                   // in the log's order
}

// NewAPI returns the log read API for the pipeline's topics, view topics and
// dead-letter topics.
func NewAPI(p *pipelines.Pipeline, log Log) *API {
	a := &API{p: p, log: log, topics: map[string]pipelines.Topic{}}
	for _, t := range p.LogTopics() {
		a.topics[t.Name] = t
		a.names = append(a.names, t.Name)
	}
	return a
}

// Routes returns the read API over the log, all reads.
func (a *API) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /v1/topics", Access: httpapi.Read, Handler: http.HandlerFunc(a.listTopics)},
		{Pattern: "GET /v1/lag", Access: httpapi.Read, Handler: http.HandlerFunc(a.lag)},
		{Pattern: "GET /v1/topics/{topic}/events", Access: httpapi.Read, Handler: http.HandlerFunc(a.events)},
	}
}

func (a *API) listTopics(w http.ResponseWriter, r *http.Request) {
	ts, err := a.log.Topics(r.Context())
	if err != nil {
		writeLogError(w, err)
		return
	}
	for i := range ts {
		ts[i].Kind, ts[i].Refusal, _ = a.p.TopicKind(ts[i].Name)
		ts[i].Publishable = ts[i].Kind == pipelines.KindEvents
	}
	httpapi.WriteJSON(w, http.StatusOK, api.Topics{Topics: ts})
}

func (a *API) lag(w http.ResponseWriter, r *http.Request) {
	lags, err := a.log.Lag(r.Context())
	if err != nil {
		writeLogError(w, err)
		return
	}
	if lags == nil {
		lags = []api.Lag{}
	}
	httpapi.WriteJSON(w, http.StatusOK, api.LagAnswer{Consumers: lags})
}

// Limits of one page of the message browser: events, and bytes of the
// answer, so that large events cannot make one answer cost gigabytes.
const (
	defaultPage     = 100
	maxPage         = 10000
	defaultMaxBytes = 4 << 20
	maxMaxBytes     = 64 << 20
)

// events pages through a topic's events. Parameters:
//
//	partition=P         only partition P (default: all)
//	from=OFFSET|TIME    start at this offset in each partition, or take the
//	                    events ingested at or after this RFC 3339 time (their
//	                    ingest_time, the time the log is ordered by; not
//	                    their event time)
//	last=N              the last N events of each partition
//	offset.P=O          continue partition P at offset O (from "next")
//	limit=N             at most N events in all (default 100, max 10000)
//	max_bytes=N         at most about N bytes of answer (default 4 MiB,
//	                    max 64 MiB); the first event always fits
//	format=ndjson       answer NDJSON, one event a line, as a download
//
// The answer is {"events": [...], "next": {"P": offset, ...}, "truncated":
// bool}: pass next back as offset.P to read on. truncated says max_bytes
// ended the page before limit while more events were there (NDJSON says it
// in the header X-Lambdaflow-Truncated).
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	t, ok := a.topics[name]
	if !ok {
		httpapi.WriteUnknown(w, "topic", name, a.names)
		return
	}
	q := r.URL.Query()
	limit := defaultPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter \"limit\": want 1 to %d, got %q", maxPage, s))
			return
		}
		limit = n
	}
	maxBytes := defaultMaxBytes
	if s := q.Get("max_bytes"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxMaxBytes {
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter \"max_bytes\": want 1 to %d, got %q", maxMaxBytes, s))
			return
		}
		maxBytes = n
	}
	parts := make([]int, 0, t.Partitions)
	if s := q.Get("partition"); s != "" {
		p, err := strconv.Atoi(s)
		if err != nil || p < 0 || p >= t.Partitions {
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter \"partition\": topic %q has partitions 0 to %d, got %q", name, t.Partitions-1, s))
			return
		}
		parts = append(parts, p)
	} else {
		for p := 0; p < t.Partitions; p++ {
			parts = append(parts, p)
		}
	}
	starts, err := a.startPositions(r.Context(), t, parts, q)
	if err != nil {
		var le logError
		if errors.As(err, &le) {
			writeLogError(w, le.err)
			return
		}
		httpapi.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	type item struct {
		partition int
		offset    int64
		e         event.Event
	}
	// Each partition's events in offset order; a page merges them by event
	// time, always taking the head of a partition, so that what a page keeps
	// of each partition is a prefix and "next" resumes exactly after it.
	// What is read of the log is bounded by the byte budget too, shared
	// by the partitions; a partition whose read stopped at its share may
	// hold more, so the merge stops when its queue runs dry (a later event
	// of another partition must not come before its unread ones).
	share := max(maxBytes/len(parts), 1)
	queues := make([][]item, 0, len(parts))
	more := make([]bool, 0, len(parts))
	after := make([]int64, len(parts)) // the offset after the last event fetched, -1 for none
	for i, p := range parts {
		entries, err := a.log.FetchBudget(r.Context(), name, p, starts[p].position(), limit, share)
		if err != nil {
			writeLogError(w, err)
			return
		}
		after[i] = -1
		var q []item
		read := 0
		for _, en := range entries {
			read += en.Bytes
			for j, e := range en.Events {
				// The log finds the first entry it stored at or after the
				// time; an entry ingested just before the time may have been
				// stored just after it: the ingest time decides.
				if starts[p].byTime && e.Ingest < starts[p].time.UnixMicro() {
					continue
				}
				q = append(q, item{p, en.Offset + int64(j), e})
			}
			after[i] = en.End()
		}
		queues = append(queues, q)
		more = append(more, len(q) < limit && read >= share)
	}
	next := map[string]int64{}
	var ends map[int]int64 // end offsets, looked up only when needed
	for i, p := range parts {
		switch {
		case len(queues[i]) > 0:
			next[strconv.Itoa(p)] = queues[i][0].offset
		case after[i] >= 0:
			next[strconv.Itoa(p)] = after[i]
		case !starts[p].byTime:
			next[strconv.Itoa(p)] = starts[p].offset
		default:
			// Nothing at or after the time: resume at the end.
			if ends == nil {
				if ends, err = a.endOffsets(r.Context(), name); err != nil {
					writeLogError(w, err)
					return
				}
			}
			next[strconv.Itoa(p)] = ends[p]
		}
	}
	// The page: events merged by time, each written as it is taken, until
	// limit, or max_bytes (the answer's envelope aside), or a partition
	// that may hold more runs dry.
	ndjson := q.Get("format") == "ndjson"
	buf := make([]byte, 0, min(maxBytes, 64<<10)+64)
	if !ndjson {
		buf = append(buf, `{"events":[`...)
	}
	body := len(buf)
	truncated := false
	for n := 0; n < limit; n++ {
		best := -1
		for i, q := range queues {
			if len(q) == 0 {
				continue
			}
			if best < 0 || q[0].e.Time < queues[best][0].e.Time {
				best = i
			}
		}
		if best < 0 {
			break
		}
		it := queues[best][0]
		mark := len(buf)
		if n > 0 && !ndjson {
			buf = append(buf, ',')
		}
		buf = appendEventRecord(buf, t.Schema, it.partition, it.offset, it.e)
		if ndjson {
			buf = append(buf, '\n')
		}
		if n > 0 && len(buf)-body > maxBytes {
			buf, truncated = buf[:mark], true
			break
		}
		queues[best] = queues[best][1:]
		next[strconv.Itoa(it.partition)] = it.offset + 1
		if len(queues[best]) == 0 && more[best] {
			truncated = n+1 < limit
			break
		}
	}
	if ndjson {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".ndjson"))
		w.Header().Set("X-Lambdaflow-Truncated", strconv.FormatBool(truncated))
		w.Write(buf)
		return
	}
	buf = append(buf, `],"next":`...)
	nb, _ := json.Marshal(next)
	buf = append(buf, nb...)
	buf = append(buf, `,"truncated":`...)
	buf = strconv.AppendBool(buf, truncated)
	buf = append(buf, "}\n"...)
	httpapi.WriteRaw(w, http.StatusOK, buf)
}

// endOffsets returns the end offset of each partition of a topic.
func (a *API) endOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	ts, err := a.log.Topics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, ti := range ts {
		if ti.Name == topic {
			for _, pi := range ti.Partitions {
				out[pi.Partition] = pi.EndOffset
			}
		}
	}
	return out, nil
}

// appendEventRecord writes one browsed event with where it is in the log.
func appendEventRecord(buf []byte, schema event.Schema, partition int, offset int64, e event.Event) []byte {
	buf = append(buf, `{"partition":`...)
	buf = strconv.AppendInt(buf, int64(partition), 10)
	buf = append(buf, `,"offset":`...)
	buf = strconv.AppendInt(buf, offset, 10)
	buf = append(buf, `,"id":`...)
	buf = event.AppendJSONString(buf, e.ID)
	buf = append(buf, `,"time":`...)
	buf = event.AppendValueJSON(buf, event.TypeTimestamp, event.Value{I: e.Time, Valid: true})
	buf = append(buf, `,"ingest_time":`...)
	buf = event.AppendValueJSON(buf, event.TypeTimestamp, event.Value{I: e.Ingest, Valid: true})
	buf = append(buf, `,"event":`...)
	buf = event.AppendEventJSON(buf, schema, e.Values)
	return append(buf, '}')
}

// start is where the browser reads a partition from: an offset or a time.
type start struct {
	offset int64
	time   time.Time
	byTime bool
}

func (s start) position() broker.Position {
	if s.byTime {
		return broker.FromTime(s.time)
	}
	return broker.FromOffset(s.offset)
}

// logError marks a failure of the log (not of the request).
type logError struct{ err error }

func (e logError) Error() string { return e.err.Error() }

// startPositions resolves where to read each partition from.
func (a *API) startPositions(ctx context.Context, t pipelines.Topic, parts []int, q map[string][]string) (map[int]start, error) {
	get := func(k string) string { return httpapi.Last(q, k) }
	out := map[int]start{}
	from, last := get("from"), get("last")
	if from != "" && last != "" {
		return nil, errors.New("parameters \"from\" and \"last\" exclude each other")
	}
	var ends map[int]api.Partition
	if last != "" || from == "" {
		ts, err := a.log.Topics(ctx)
		if err != nil {
			return nil, logError{err}
		}
		ends = map[int]api.Partition{}
		for _, ti := range ts {
			if ti.Name == t.Name {
				for _, pi := range ti.Partitions {
					ends[pi.Partition] = pi
				}
			}
		}
	}
	for _, p := range parts {
		if s := get("offset." + strconv.Itoa(p)); s != "" {
			o, err := strconv.ParseInt(s, 10, 64)
			if err != nil || o < 0 {
				return nil, fmt.Errorf("parameter \"offset.%d\": want an offset, got %q", p, s)
			}
			out[p] = start{offset: o}
			continue
		}
		switch {
		case last != "":
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("parameter \"last\": want a count, got %q", last)
			}
			pi := ends[p]
			o := pi.EndOffset - n
			if o < pi.FirstOffset {
				o = pi.FirstOffset
			}
			if o < 0 {
				o = 0
			}
			out[p] = start{offset: o}
		case from != "":
			if o, err := strconv.ParseInt(from, 10, 64); err == nil {
				if o < 0 {
					return nil, fmt.Errorf("parameter \"from\": offset must be ≥ 0, got %d", o)
				}
				out[p] = start{offset: o}
				continue
			}
			tm, err := httpapi.ParseTime(from)
			if err != nil {
				return nil, fmt.Errorf("parameter \"from\": want an offset or an RFC 3339 time, got %q", from)
			}
			out[p] = start{time: tm, byTime: true}
		default:
			pi := ends[p]
			o := pi.FirstOffset
			if o < 0 {
				o = pi.EndOffset
			}
			out[p] = start{offset: o}
		}
	}
	return out, nil
}

// writeLogError answers a failure of the log: 503 with Retry-After when it is
// unavailable, 500 otherwise.
func writeLogError(w http.ResponseWriter, err error) {
	if errors.Is(err, broker.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, "log unavailable: "+err.Error())
		return
	}
	if errors.Is(err, broker.ErrUnknownTopic) {
		httpapi.WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	httpapi.WriteError(w, http.StatusInternalServerError, strings.TrimSpace(err.Error()))
}
