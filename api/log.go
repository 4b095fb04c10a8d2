package api

import "encoding/json"

// Topics answers GET /v1/topics.
type Topics struct {
	Topics []Topic `json:"topics"`
}

// Topic describes one topic of the log.
type Topic struct {
	Name string `json:"name"`
	// Events is the number of events held, summed over partitions.
	Events     int64       `json:"events"`
	Bytes      int64       `json:"bytes"`
	Partitions []Partition `json:"partitions"`
	// Retention is the topic's retention as a Go duration ("168h0m0s").
	Retention string `json:"retention"`
	MaxBytes  int64  `json:"max_bytes"`
	Replicas  int    `json:"replicas"`
	// Kind is what the topic holds: "events" (clients publish to it),
	// "view" (a view's rows, written by the speed and batch layers),
	// "view_partials" (a view's partial states, which the speed layer's
	// processes hand each other) or "dead_letters" (a sink's dead letters,
	// written by the sink).
	Kind string `json:"kind"`
	// Publishable is true for the topics clients publish to; Refusal says
	// why the others refuse publishing and what to do instead.
	Publishable bool   `json:"publishable"`
	Refusal     string `json:"refusal,omitempty"`
}

// EndOffset is the sum of the partitions' end offsets: every event ever
// appended to the topic, so its growth between two answers is the rate in.
func (t Topic) EndOffset() int64 {
	var n int64
	for _, p := range t.Partitions {
		n += p.EndOffset
	}
	return n
}

// Partition describes one partition's log.
type Partition struct {
	Partition int `json:"partition"`
	// FirstOffset and LastOffset are the offsets of the first and the last
	// event still held, both -1 when the partition holds none.
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	// EndOffset is the offset the next appended event will get.
	EndOffset int64  `json:"end_offset"`
	Bytes     int64  `json:"bytes"`
	Entries   uint64 `json:"entries"`
}

// LagAnswer answers GET /v1/lag.
type LagAnswer struct {
	Consumers []Lag `json:"consumers"`
}

// Lag is one consumer's position on one partition. Offset, Lag and
// LagSeconds are the committed position (what a restart resumes from, the
// number Kafka's lag monitors report); the Read fields are how far the
// consumer has read, which is ahead of its commits for consumers that
// commit once their work is durable (the lake writer when a file rolls,
// the speed layer at a checkpoint). A healthy consumer has a small read
// lag; its committed lag may be as large as its commit interval.
type Lag struct {
	Consumer  string `json:"consumer"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Offset is the next event the consumer will read after a restart (its
	// last commit; 0 for a registered consumer that has not committed).
	Offset int64 `json:"offset"`
	// EndOffset is the offset the next appended event will get.
	EndOffset int64 `json:"end_offset"`
	// Lag is EndOffset − Offset, never below 0.
	Lag int64 `json:"lag"`
	// LagSeconds is how long the oldest uncommitted event has waited: now
	// (the broker clock) minus the time the log appended the entry holding
	// Offset (the first entry held, if retention removed that one). 0 when
	// Lag is 0, never below 0.
	LagSeconds float64 `json:"lag_seconds"`
	// EventTimeLagSeconds is the age by event time of the oldest
	// uncommitted event: now minus the smallest event time of the entry
	// holding Offset. Late or backfilled events make it large however
	// current the consumer is. 0 when Lag is 0, never below 0.
	EventTimeLagSeconds float64 `json:"event_time_lag_seconds"`
	// ReadOffset is the next event the consumer will read, as it last
	// reported (at most a second old); Offset for a consumer that reports
	// nothing but its commits.
	ReadOffset int64 `json:"read_offset"`
	// ReadLag is EndOffset − ReadOffset, never below 0.
	ReadLag int64 `json:"read_lag"`
	// ReadLagSeconds is now minus the append time of the entry holding
	// ReadOffset: how long the oldest unread event has waited. 0 when
	// ReadLag is 0.
	ReadLagSeconds float64 `json:"read_lag_seconds"`
}

// Browse answers GET /v1/topics/{topic}/events, the message browser.
type Browse struct {
	Events []BrowsedEvent `json:"events"`
	// Next is where to read on, per partition ("0": offset): pass each as
	// the parameter offset.P.
	Next map[string]int64 `json:"next"`
	// Truncated says the page ended before its limit because of its byte
	// budget (max_bytes) while more events were there: read on with Next.
	Truncated bool `json:"truncated"`
}

// BrowsedEvent is one event with where it is in the log. Event is the
// event's fields as a JSON object.
type BrowsedEvent struct {
	Partition  int             `json:"partition"`
	Offset     int64           `json:"offset"`
	ID         string          `json:"id"`
	Time       string          `json:"time"`
	IngestTime string          `json:"ingest_time"`
	Event      json.RawMessage `json:"event"`
}
