package api

import "encoding/json"

// Groups answers GET /v1/groups: every consumer group, Kafka's and the
// HTTP API's.
type Groups struct {
	Groups []Group `json:"groups"`
}

// Group is one consumer group, as GET /v1/groups/{group} answers it.
type Group struct {
	Group string `json:"group"`
	// Protocol is "http" (joined through /v1/groups) or "kafka" (Kafka
	// clients).
	Protocol string `json:"protocol"`
	// Consumer is the name its committed positions have in /v1/lag
	// ("http.<group>", "kafka.<group>").
	Consumer   string        `json:"consumer"`
	State      string        `json:"state"`
	Generation int64         `json:"generation"`
	Members    []GroupMember `json:"members"`
	// Partitions are the group's committed positions and lag.
	Partitions []GroupPartition `json:"partitions"`
	// Lag is the sum of the partitions' lag.
	Lag int64 `json:"lag"`
}

// GroupMember is one member of a group and what it is assigned.
type GroupMember struct {
	Member      string           `json:"member"`
	Client      string           `json:"client,omitempty"`
	Assignments []TopicPartition `json:"assignments"`
	LastSeen    *string          `json:"last_seen,omitempty"` // RFC 3339
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

// GroupPartition is a group's committed position on one partition.
type GroupPartition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Committed is the next offset the group will read after a restart;
	// -1 before its first commit.
	Committed  int64   `json:"committed"`
	EndOffset  int64   `json:"end_offset"`
	Lag        int64   `json:"lag"`
	LagSeconds float64 `json:"lag_seconds"`
}

// Join is the body of POST /v1/groups/{group}/members.
type Join struct {
	// Topics the member reads (required).
	Topics []string `json:"topics"`
	// SessionTimeout: a member that neither polls nor heartbeats for this
	// long is removed and its partitions go to the others (Go duration,
	// default 30s, 1s to 30m).
	SessionTimeout string `json:"session_timeout,omitempty"`
	// Reset: where a partition without a committed position starts,
	// "earliest" (default) or "latest".
	Reset string `json:"reset,omitempty"`
	// Client names the application, for GET /v1/groups.
	Client string `json:"client,omitempty"`
}

// Membership answers a join or a heartbeat: the member's id, the group's
// generation and the partitions the member reads in it.
type Membership struct {
	Group          string           `json:"group"`
	Member         string           `json:"member"`
	Generation     int64            `json:"generation"`
	Assignments    []TopicPartition `json:"assignments"`
	SessionTimeout string           `json:"session_timeout"`
}

// GroupEvent is one event delivered to a group member: a line of the
// NDJSON answer, or the data of a server-sent event.
type GroupEvent struct {
	Topic     string          `json:"topic"`
	Partition int             `json:"partition"`
	Offset    int64           `json:"offset"`
	ID        string          `json:"id"`
	Value     json.RawMessage `json:"value"`
}

// Commit is the body of POST /v1/groups/{group}/members/{member}/commit;
// without offsets, everything delivered to the member is committed.
type Commit struct {
	Offsets []CommitOffset `json:"offsets,omitempty"`
}

// CommitOffset commits offset (the next one to read) of one partition.
type CommitOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Committed answers a commit: the positions stored.
type Committed struct {
	Offsets []CommitOffset `json:"offsets"`
}
