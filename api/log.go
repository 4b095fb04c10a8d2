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

// Lag is one consumer's position on one partition.
type Lag struct {
	Consumer  string `json:"consumer"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Offset is the next event the consumer will read (its last commit; 0
	// for a registered consumer that has not committed).
	Offset int64 `json:"offset"`
	// EndOffset is the offset the next appended event will get.
	EndOffset int64 `json:"end_offset"`
	// Lag is EndOffset − Offset, never below 0.
	Lag int64 `json:"lag"`
	// LagSeconds is the age, by the broker clock, of the oldest event the
	// consumer has not consumed: now minus the smallest event time of the
	// entry holding Offset (of the first entry held, if retention removed
	// that one). 0 when Lag is 0, never below 0.
	LagSeconds float64 `json:"lag_seconds"`
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
