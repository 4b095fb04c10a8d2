package api

import (
	"encoding/json"
	"time"
)

// Sinks answers GET /v1/sinks.
type Sinks struct {
	Sinks []SinkStatus `json:"sinks"`
}

// SinkStatus is one sink's health.
type SinkStatus struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Sources []string `json:"sources"`
	Healthy bool     `json:"healthy"`
	Error   string   `json:"error,omitempty"`
}

// DeadLetters answers GET /v1/sinks/{sink}/dlq: the dead letters not yet
// replayed, oldest first.
type DeadLetters struct {
	Sink        string       `json:"sink"`
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// DeadLetter is one record a sink's target rejected for good.
type DeadLetter struct {
	// DLQOffset is the dead letter's offset in the dead-letter topic.
	DLQOffset int64 `json:"dlq_offset"`
	// Source, Partition and Offset locate the record in the log.
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	// Record is the row as a JSON object keyed by column name; null when the
	// log entry itself could not be decoded.
	Record json.RawMessage `json:"record"`
	// Error is why the target rejected it.
	Error string `json:"error"`
	// Time is when it was dead-lettered.
	Time time.Time `json:"time"`
}

// Replay answers POST /v1/sinks/{sink}/dlq/replay: how many dead letters
// landed, how many failed again (back in the dead-letter topic), and with a
// 503 or 408 the error that stopped the replay.
type Replay struct {
	Sink     string `json:"sink"`
	Replayed int    `json:"replayed"`
	Failed   int    `json:"failed"`
	Error    string `json:"error,omitempty"`
}
