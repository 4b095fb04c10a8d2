package api

// IngestResult answers POST /v1/topics/{topic}/events once every event is
// durable: one result per event, in request order.
type IngestResult struct {
	// Accepted counts the events appended now; duplicates are not.
	Accepted int           `json:"accepted"`
	Results  []EventResult `json:"results"`
}

// EventResult is where one event is in the log. A duplicate (an id seen
// within the dedup window) answers the original's partition and offset.
type EventResult struct {
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
	Duplicate bool  `json:"duplicate"`
}
