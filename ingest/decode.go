package ingest

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// idKey is the reserved JSON key that carries an event's id.
const idKey = "id"

// decodeError says why a request body was rejected and where. It is answered
// as 400 with {"error", "record", "field", "line"} (record, field and line only
// when known).
type decodeError struct {
	// Record is the 0-based index of the offending record, or -1 when the
	// error is not about one record (an empty body).
	Record int
	// Line is the 1-based line of the body where the record starts; 0 for a
	// JSON array body, whose records are not lines.
	Line int
	// Field names the offending key, empty when the error is about the
	// record as a whole (syntax, not an object).
	Field string
	// Msg is the reason, without the position.
	Msg string
}

func (e *decodeError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Record >= 0 {
		b.WriteString("record ")
		b.WriteString(strconv.Itoa(e.Record))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder turns request bodies into events typed by one topic's schema. It is
// immutable after newDecoder and safe for concurrent use; per-call state lives
// in a decodeState.
//
// It is hand-written rather than built on encoding/json because JSON decoding
// was about half of ingest's CPU with encoding/json, and events are flat: a
// single pass over the body that types each value as it is scanned, with
// strings sliced out of the body instead of copied, does several times less
// work than decoding into maps or structs and converting afterwards.
type decoder struct {
	topic     string
	schema    event.Schema
	index     map[string]int // field name → position in schema
	timeField int            // position of the event-time field, or -1
	required  []int          // positions of required fields

	// Numeric timestamps are epoch numbers in the topic's time_unit:
	// 10^unitExp microseconds each. Unless the unit was declared, those
	// that would fall before earliest are refused: epoch seconds read as
	// milliseconds land there, and guessing the unit is not an option.
	unitExp  int
	unitName string
	earliest int64
	// maxFuture bounds how far the event time may be ahead of the ingest
	// time (µs); 0: no bound.
	maxFuture int64

	// siteField is the position of the site field (a topic with sources),
	// or -1; ingest sets it to site, clients may not.
	siteField int
	site      string
}

// undeclaredEarliest is the earliest time an undeclared (millisecond)
// numeric timestamp may give, 1973-03-03T09:46:40Z: 10^11 milliseconds.
// Epoch seconds up to the year 5138 are below 10^11, so they are refused
// instead of landing in 1970.
const undeclaredEarliest = 100_000_000_000 * 1000

// newDecoder decodes events of topic t accepted at site.
func newDecoder(t *pipelines.Topic, site string) *decoder {
	d := &decoder{
		topic:     t.Name,
		schema:    t.Schema,
		index:     make(map[string]int, len(t.Schema)),
		timeField: -1,
		unitExp:   3,
		unitName:  "milliseconds",
		earliest:  math.MinInt64,
		maxFuture: t.MaxFuture.D().Microseconds(),
		siteField: -1,
		site:      site,
	}
	switch t.TimeUnit {
	case "s":
		d.unitExp, d.unitName = 6, "seconds"
	case "us":
		d.unitExp, d.unitName = 0, "microseconds"
	case "":
		d.earliest = undeclaredEarliest
	}
	for i, f := range t.Schema {
		if pipelines.IsSiteField(f) {
			d.siteField = i
			continue
		}
		d.index[f.Name] = i
		if f.Required {
			d.required = append(d.required, i)
		}
	}
	if t.Time != "" {
		d.timeField = t.Schema.Index(t.Time)
	}
	return d
}

// decodeState is the per-request scratch of a decode call.
type decodeState struct {
	d      *decoder
	s      string // the body
	pos    int
	ingest int64 // ingest time of every event, UTC microseconds

	// seen[i] == gen marks field i as present in the record being decoded,
	// so nothing has to be cleared between records.
	seen []uint32
	gen  uint32

	slab    []event.Value // Values of the next events are cut from here
	events  []event.Event
	scratch []byte // unescaping buffer
	lines   bool   // NDJSON body: errors carry line numbers
	bufs    *requestBufs
}

// requestBufs are the large per-request slices, reused across requests
// through a pool: they are most of what a request allocates, and with them
// garbage collection was a fifth of the handler's CPU. They may be reused
// only once nothing refers to the request's events any more, that is after
// its answer (Appends encode events and do not keep them).
type requestBufs struct {
	values []event.Value
	events []event.Event
	sorted []event.Event
	used   bool // values handed out to the current request
}

// maxPooledEvents bounds the buffers kept in the pool, so that one huge
// request does not pin its memory.
const maxPooledEvents = 4096

// reset drops every reference the buffers hold, keeping what fits the pool.
func (b *requestBufs) reset(events []event.Event) {
	if cap(events) > cap(b.events) && cap(events) <= maxPooledEvents {
		b.events = events[:0]
	}
	clear(b.events[:cap(b.events)])
	clear(b.values[:cap(b.values)])
	clear(b.sorted[:cap(b.sorted)])
	b.sorted = b.sorted[:0]
	b.used = false
}

// decode parses body (one object, an array of objects, or NDJSON) into
// events. Event i's ID is empty when the record had no id of its own; the
// caller assigns one. ingest is the request's ingest time in microseconds.
// bufs, if not nil, lends memory for the events.
func (d *decoder) decode(body string, ingest int64, bufs *requestBufs) ([]event.Event, *decodeError) {
	var seen [32]uint32
	st := decodeState{d: d, s: body, ingest: ingest, seen: seen[:0], bufs: bufs}
	if len(d.schema) <= len(seen) {
		st.seen = seen[:len(d.schema)]
	} else {
		st.seen = make([]uint32, len(d.schema))
	}
	if err := st.run(); err != nil {
		return nil, err
	}
	return st.events, nil
}

func (st *decodeState) run() *decodeError {
	st.skipSpace()
	if st.pos >= len(st.s) {
		return &decodeError{Record: -1, Msg: "empty body"}
	}
	switch st.s[st.pos] {
	case '[':
		return st.array()
	case '{':
		st.lines = true
		st.reserve(strings.Count(st.s, "\n") + 1)
		return st.stream()
	default:
		return &decodeError{Record: -1, Msg: "expected a JSON object, an array of objects or NDJSON, got " + st.describe()}
	}
}

// array decodes `[{...}, {...}]`.
func (st *decodeState) array() *decodeError {
	st.pos++ // '['
	st.reserve(64)
	st.skipSpace()
	if st.pos < len(st.s) && st.s[st.pos] == ']' {
		st.pos++
		st.skipSpace()
		if st.pos < len(st.s) {
			return st.recordErr(0, st.pos, "", "unexpected "+st.describe()+" after the array")
		}
		return &decodeError{Record: -1, Msg: "empty array: no events"}
	}
	for rec := 0; ; rec++ {
		st.skipSpace()
		start := st.pos
		if st.pos >= len(st.s) {
			return st.recordErr(rec, start, "", "unexpected end of body in the array")
		}
		if st.s[st.pos] != '{' {
			return st.recordErr(rec, start, "", "expected a JSON object, got "+st.describe())
		}
		if err := st.object(rec, start); err != nil {
			return err
		}
		st.skipSpace()
		if st.pos >= len(st.s) {
			return st.recordErr(rec, start, "", "unexpected end of body in the array")
		}
		switch st.s[st.pos] {
		case ',':
			st.pos++
		case ']':
			st.pos++
			st.skipSpace()
			if st.pos < len(st.s) {
				return st.recordErr(rec+1, st.pos, "", "unexpected "+st.describe()+" after the array")
			}
			return nil
		default:
			return st.recordErr(rec, start, "", "expected ',' or ']' after the object, got "+st.describe())
		}
	}
}

// stream decodes one object or several separated by white space (NDJSON).
func (st *decodeState) stream() *decodeError {
	for rec := 0; ; rec++ {
		start := st.pos
		if st.s[st.pos] != '{' {
			return st.recordErr(rec, start, "", "expected a JSON object, got "+st.describe())
		}
		if err := st.object(rec, start); err != nil {
			return err
		}
		st.skipSpace()
		if st.pos >= len(st.s) {
			return nil
		}
	}
}

// reserve sizes the value slab for about n more events, so that a typical
// request allocates its values once.
func (st *decodeState) reserve(n int) {
	n = min(max(n, 1), maxPooledEvents)
	nf := len(st.d.schema)
	if b := st.bufs; b != nil && !b.used && cap(b.values) >= n*nf {
		st.slab, b.used = b.values[:cap(b.values)], true
	} else {
		st.slab = make([]event.Value, n*nf)
		if b != nil && !b.used && n <= maxPooledEvents {
			b.values, b.used = st.slab, true // kept for the next request
		}
	}
	if st.events == nil {
		if b := st.bufs; b != nil && cap(b.events) >= n {
			st.events = b.events[:0]
		} else {
			st.events = make([]event.Event, 0, n)
		}
	}
}

// object decodes one flat object starting at '{' into a new event.
func (st *decodeState) object(rec, start int) *decodeError {
	d := st.d
	nf := len(d.schema)
	if len(st.slab) < nf {
		st.reserve(2 * len(st.events))
	}
	vals := st.slab[:nf:nf]
	st.slab = st.slab[nf:]
	st.gen++
	if st.gen == 0 { // wrapped: old marks could alias
		clear(st.seen)
		st.gen = 1
	}
	ev := event.Event{Ingest: st.ingest, Time: st.ingest, Values: vals}
	idSeen := false

	st.pos++ // '{'
	st.skipSpace()
	if st.pos < len(st.s) && st.s[st.pos] == '}' {
		st.pos++
		return st.finish(rec, start, &ev)
	}
	next := 0 // the field expected next: producers usually keep one order
	for {
		st.skipSpace()
		if st.pos >= len(st.s) || st.s[st.pos] != '"' {
			return st.recordErr(rec, start, "", "expected a string key, got "+st.describe())
		}
		key, err := st.str()
		if err != "" {
			return st.recordErr(rec, start, "", "bad key: "+err)
		}
		st.skipSpace()
		if st.pos >= len(st.s) || st.s[st.pos] != ':' {
			return st.recordErr(rec, start, key, "expected ':' after the key, got "+st.describe())
		}
		st.pos++
		st.skipSpace()

		fi := -1
		if next < nf && next != d.siteField && d.schema[next].Name == key {
			fi = next
		} else if i, ok := d.index[key]; ok {
			fi = i
		}
		isID := key == idKey
		if fi < 0 && !isID {
			if key == pipelines.SiteField && d.siteField >= 0 {
				return st.recordErr(rec, start, key, "the site of origin is set by the site that accepts the event, not by its producer")
			}
			return st.recordErr(rec, start, key, "unknown field (not in the schema of topic "+strconv.Quote(d.topic)+")")
		}
		if fi >= 0 {
			if st.seen[fi] == st.gen {
				return st.recordErr(rec, start, key, "duplicate key")
			}
			st.seen[fi] = st.gen
			next = fi + 1
			v := &vals[fi]
			if msg := st.value(d.schema[fi].Type, v); msg != "" {
				return st.recordErr(rec, start, key, msg)
			}
			if !v.Valid && d.schema[fi].Required {
				return st.recordErr(rec, start, key, "null for a required field")
			}
			if isID && v.Valid {
				ev.ID = canonical(d.schema[fi].Type, *v)
				if ev.ID == "" {
					return st.recordErr(rec, start, key, "event id must not be empty")
				}
			}
			if fi == d.timeField && v.Valid {
				if d.maxFuture > 0 && v.I-st.ingest > d.maxFuture {
					return st.recordErr(rec, start, key, event.FormatTime(v.I)+" is more than "+pipelines.Duration(d.maxFuture*1000).String()+
						" ahead of the ingest time (topics[].max_future of topic "+strconv.Quote(d.topic)+")")
				}
				ev.Time = v.I
			}
		} else {
			// The reserved id key with no schema field behind it.
			if idSeen {
				return st.recordErr(rec, start, key, "duplicate key")
			}
			idSeen = true
			var v event.Value
			if msg := st.value(event.TypeString, &v); msg != "" {
				return st.recordErr(rec, start, key, msg)
			}
			if v.Valid {
				if v.S == "" {
					return st.recordErr(rec, start, key, "event id must not be empty")
				}
				ev.ID = v.S
			}
		}

		st.skipSpace()
		if st.pos >= len(st.s) {
			return st.recordErr(rec, start, "", "unexpected end of body in the object")
		}
		switch st.s[st.pos] {
		case ',':
			st.pos++
		case '}':
			st.pos++
			return st.finish(rec, start, &ev)
		default:
			return st.recordErr(rec, start, "", "expected ',' or '}' after field "+strconv.Quote(key)+", got "+st.describe())
		}
	}
}

// finish checks required fields, sets the site and appends the event.
func (st *decodeState) finish(rec, start int, ev *event.Event) *decodeError {
	for _, fi := range st.d.required {
		if st.seen[fi] != st.gen {
			return st.recordErr(rec, start, st.d.schema[fi].Name, "missing required field")
		}
	}
	if st.d.siteField >= 0 {
		ev.Values[st.d.siteField] = event.Value{S: st.d.site, Valid: true}
	}
	st.events = append(st.events, *ev)
	return nil
}

// value scans one JSON value, types it as t and stores it in dst.
func (st *decodeState) value(t event.FieldType, dst *event.Value) string {
	if st.pos >= len(st.s) {
		return "unexpected end of body"
	}
	switch c := st.s[st.pos]; {
	case c == '"':
		s, err := st.str()
		if err != "" {
			return err
		}
		switch t {
		case event.TypeString:
			dst.S, dst.Valid = s, true
			return ""
		case event.TypeTimestamp:
			us, ok := parseRFC3339(s)
			if !ok {
				// The slow path accepts the rarer forms time.Parse does.
				tm, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return "expected timestamp (RFC 3339 string or epoch " + st.d.unitName + "), got string " + quoteShort(s)
				}
				us = tm.UnixMicro()
			}
			return timestamp(dst, us, s)
		}
		return "expected " + t.String() + ", got string"
	case c == '-' || (c >= '0' && c <= '9'):
		return st.number(t, dst)
	case c == 't':
		if !st.literal("true") {
			return "invalid JSON literal " + st.describe()
		}
		if t != event.TypeBool {
			return "expected " + t.String() + ", got boolean"
		}
		dst.I, dst.Valid = 1, true
		return ""
	case c == 'f':
		if !st.literal("false") {
			return "invalid JSON literal " + st.describe()
		}
		if t != event.TypeBool {
			return "expected " + t.String() + ", got boolean"
		}
		dst.Valid = true
		return ""
	case c == 'n':
		if !st.literal("null") {
			return "invalid JSON literal " + st.describe()
		}
		return ""
	case c == '{' || c == '[':
		return "nested objects and arrays are not supported (events are flat)"
	}
	return "invalid JSON value " + st.describe()
}

func (st *decodeState) literal(lit string) bool {
	if strings.HasPrefix(st.s[st.pos:], lit) {
		st.pos += len(lit)
		return true
	}
	return false
}

func (st *decodeState) skipSpace() {
	s := st.s
	i := st.pos
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	st.pos = i
}

// describe names what is at st.pos, for messages.
func (st *decodeState) describe() string {
	if st.pos >= len(st.s) {
		return "end of body"
	}
	switch c := st.s[st.pos]; {
	case c == '"':
		return "string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	case c == '[':
		return "array"
	case c == '{':
		return "object"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	default:
		return strconv.QuoteRune(rune(c))
	}
}

// recordErr builds the error for record rec, whose text starts at byte start.
// The line is only counted here, on the error path.
func (st *decodeState) recordErr(rec, start int, field, msg string) *decodeError {
	e := &decodeError{Record: rec, Field: field, Msg: msg}
	if st.lines {
		e.Line = 1 + strings.Count(st.s[:min(start, len(st.s))], "\n")
	}
	return e
}

// quoteShort quotes s for a message, cut to a readable length.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// local reports whether ev was accepted at this site: true unless the
// topic has sources and ev came from one of them.
func (d *decoder) local(ev *event.Event) bool {
	return d.siteField < 0 || d.siteField >= len(ev.Values) || ev.Values[d.siteField].S == d.site
}
