// Package groups is the HTTP API's consumer groups, for custom
// applications that read topics without a Kafka client: members join a
// group, the group's partitions are shared among its members (and moved
// when one joins, leaves or goes silent), each member reads its
// partitions as NDJSON long polls or as server-sent events, and commits
// what it processed. Committed positions are those of consumer
// "http.<group>" in the log's offsets bucket: they survive restarts and
// show in GET /v1/lag like every consumer's.
//
// It owns the routes under /v1/groups and the group records in the
// key-value bucket <prefix>_groups. Like the Kafka listener's groups, a
// group's membership, generation, assignment and delivery positions are
// one record changed only with compare-and-set, so that any process of
// the pipeline serves any member: a member may poll one process and
// commit through another. It must not change the log; it reads it through
// package broker.
//
// # Protocol
//
// The server assigns: on every change of membership the generation grows
// and each subscribed topic's partitions are dealt round-robin to the
// members that read it, in member-id order. A partition that moves starts,
// for its new owner, at the group's committed position (or at the reset
// policy's end of the log when none is committed): delivery is
// at-least-once, and what a member read but did not commit before losing
// a partition is read again by the next owner. Commits name partitions the
// member owns in the current generation (409 otherwise), so a member that
// was replaced cannot move the group's positions.
//
// Polling, streaming, heartbeating and committing all count as signs of
// life; a member silent for its session timeout is removed. An unknown
// member (removed, or never joined) gets 404 and joins again.
package groups
