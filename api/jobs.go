package api

import "time"

// JobStarted answers POST /v1/views/{view}/recompute (202).
type JobStarted struct {
	Job string `json:"job"`
}

// Jobs answers GET /v1/jobs, newest first.
type Jobs struct {
	Jobs []JobStatus `json:"jobs"`
}

// JobState is where a batch job is in its life.
type JobState string

// The states of a job, in order.
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
)

// JobStatus answers GET /v1/jobs/{id}. Done and Total count lake hours to
// read; Rows counts lake rows read so far.
type JobStatus struct {
	ID            string     `json:"id"`
	View          string     `json:"view"`
	State         JobState   `json:"state"`
	Trigger       string     `json:"trigger"` // "schedule" or "request"
	Done          int        `json:"done"`
	Total         int        `json:"total"`
	Rows          int64      `json:"rows"`
	RowsPerSecond float64    `json:"rows_per_second"`
	ETASeconds    float64    `json:"eta_seconds"`
	Windows       int        `json:"windows"`           // rows of the view written
	Horizon       *time.Time `json:"horizon,omitempty"` // the view's horizon after the job
	Error         string     `json:"error,omitempty"`
	// Lake says what a requested job did first to make the lake hold the
	// log up to its end, or why it could not.
	Lake string `json:"lake,omitempty"`
	// NothingToDo is true for a job that succeeded without changing the
	// view; Note says why.
	NothingToDo bool       `json:"nothing_to_do,omitempty"`
	Note        string     `json:"note,omitempty"`
	QueuedAt    time.Time  `json:"queued_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// Finished reports whether the job is over.
func (s JobStatus) Finished() bool { return s.State == JobSucceeded || s.State == JobFailed }
