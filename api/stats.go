package api

import "time"

// Stats answers GET /v1/stats: the live numbers of the process that
// answers, the ones the console and `lambdaflow top` show. Counters are
// totals since the process started at Started (a restart starts them at 0
// again), except where a field says it is durable (the log's numbers, what
// the lake holds): a client takes two answers and divides the difference by
// the difference of their Time to get a rate. A part the process does not
// run is null (Ingest, Batch) or empty (Views, Sinks).
type Stats struct {
	Pipeline string    `json:"pipeline"`
	Time     time.Time `json:"time"`
	// Started is when the process started: what its counters count from.
	Started time.Time `json:"started"`
	// Topics and Consumers are the log's, as every process sees it.
	Topics    []TopicStats `json:"topics"`
	Consumers []Lag        `json:"consumers"`
	Ingest    *IngestStats `json:"ingest"`
	Views     []ViewStats  `json:"views"`
	Batch     *BatchStats  `json:"batch"`
	Sinks     []SinkStats  `json:"sinks"`
	// Links are the links pulling other sites' topics in (run with
	// ingest); their lag is in Consumers as mirror.<site>.<topic>.
	Links []LinkStats `json:"links"`
}

// TopicStats is one topic of the log.
type TopicStats struct {
	Name string `json:"name"`
	// Events and Bytes are what the log holds now (retention removes).
	Events int64 `json:"events"`
	Bytes  int64 `json:"bytes"`
	// EndOffsets is each partition's end offset: events ever appended, so
	// their growth is the rate in.
	EndOffsets []int64 `json:"end_offsets"`
}

// IngestStats is HTTP ingest in this process.
type IngestStats struct {
	// Requests counts requests answered 200; Rejects those refused.
	Requests uint64 `json:"requests"`
	Rejects  uint64 `json:"rejects"`
	// Events counts events acknowledged durable, Duplicates those answered
	// as duplicates instead, Bytes the bodies of acknowledged requests.
	Events     uint64 `json:"events"`
	Duplicates uint64 `json:"duplicates"`
	Bytes      uint64 `json:"bytes"`
	// InFlight is the events accepted and not yet durable.
	InFlight int64              `json:"in_flight"`
	Topics   []IngestTopicStats `json:"topics"`
}

// IngestTopicStats is ingest into one topic.
type IngestTopicStats struct {
	Topic      string `json:"topic"`
	Events     uint64 `json:"events"`
	Duplicates uint64 `json:"duplicates"`
	Bytes      uint64 `json:"bytes"`
	Rejects    uint64 `json:"rejects"`
}

// ViewStats is the speed layer's work on one view in this process.
type ViewStats struct {
	View string `json:"view"`
	// Events counts events of the view's topic processed (replays after a
	// restart included); LateEvents those behind the watermark, left to the
	// batch layer; RejectedEvents those the where expression failed on.
	Events         uint64 `json:"events"`
	LateEvents     uint64 `json:"late_events"`
	RejectedEvents uint64 `json:"rejected_events"`
	// OpenWindows is the (group, window) states held: the state's size.
	OpenWindows int64 `json:"open_windows"`
	// Watermark is null until the view has seen an event.
	Watermark *time.Time `json:"watermark"`
	// CheckpointAgeSeconds is the time since the last checkpoint (since
	// start before the first); CheckpointBytes that checkpoint's size.
	CheckpointAgeSeconds float64 `json:"checkpoint_age_seconds"`
	CheckpointBytes      int64   `json:"checkpoint_bytes"`
}

// BatchStats is the batch layer in this process: the lake writer per topic
// and the recomputation per view.
type BatchStats struct {
	Lake  []LakeStats      `json:"lake"`
	Views []BatchViewStats `json:"views"`
	// Jobs counts the jobs in the job history by state.
	Jobs map[JobState]int `json:"jobs"`
}

// LakeStats is the lake writer's work on one topic: Rows, Files,
// Compactions and ExpiredFiles (taken out by lake.retention) since the
// process started; RowsHeld, FilesHeld, PeriodsHeld and OldestPeriod what
// the lake holds, from its manifest (durable: a restart keeps them).
// PeriodsHeld is the periods (hours, days or months: the topic's
// lake.partitioning) its files are in: FilesHeld once compaction has
// merged every period. OldestPeriod is the start of the earliest of them
// (nil for an empty lake): how far back the lake goes.
type LakeStats struct {
	Topic        string     `json:"topic"`
	Rows         uint64     `json:"rows"`
	Files        uint64     `json:"files"`
	Compactions  uint64     `json:"compactions"`
	ExpiredFiles uint64     `json:"expired_files"`
	RowsHeld     int64      `json:"rows_held"`
	FilesHeld    int        `json:"files_held"`
	PeriodsHeld  int        `json:"periods_held"`
	OldestPeriod *time.Time `json:"oldest_period,omitempty"`
}

// BatchViewStats is the batch layer's recomputation of one view.
type BatchViewStats struct {
	View string `json:"view"`
	// Horizon is null before the first run that found data.
	Horizon *time.Time `json:"horizon"`
	// LastSuccess is when the last successful job finished, null before one.
	LastSuccess   *time.Time `json:"last_success"`
	Failures      uint64     `json:"failures"`
	RowsPerSecond float64    `json:"rows_per_second"` // of the last job
}

// SinkStats is one sink in this process.
type SinkStats struct {
	Sink    string `json:"sink"`
	Healthy bool   `json:"healthy"`
	// Rows counts rows written to the target, dead letters not included;
	// Retries failed writes tried again; DeadLetters rows the target
	// rejected for good.
	Rows        uint64 `json:"rows"`
	Retries     uint64 `json:"retries"`
	DeadLetters uint64 `json:"dead_letters"`
	// Batches and BatchSeconds give the average time to deliver a batch.
	Batches      uint64  `json:"batches"`
	BatchSeconds float64 `json:"batch_seconds"`
}

// LinkStats is one link pulling another site's topic into a local one, in
// this process.
type LinkStats struct {
	Site        string `json:"site"`
	Topic       string `json:"topic"`
	SourceTopic string `json:"source_topic"`
	// URL is the other site's NATS, without credentials.
	URL string `json:"url"`
	// Consumer is the link's name in the lag: mirror.<site>.<topic>.
	Consumer string `json:"consumer"`
	// Up is true while the link reaches the other site and pulls; Error
	// says why not.
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
	// Seen is when the other site last answered (zero: never).
	Seen time.Time `json:"seen"`
	// Events counts events pulled and appended; Partitions is the
	// partitions of the other site's topic.
	Events     uint64 `json:"events"`
	Partitions int    `json:"partitions"`
}
