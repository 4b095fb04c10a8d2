// Package broker owns the log: the durable, partitioned record of every
// accepted event, on NATS JetStream. It runs an embedded nats-server or
// connects to an external cluster; maps each topic partition to one stream;
// writes record batches ("entries": many events of one partition in one
// JetStream message, see AppendEntry and docs/log-format.md); numbers events
// with per-partition offsets; reads partitions from an offset or a time;
// keeps the committed offsets of every consumer and the read positions
// they report between commits (Progress); and computes their lag, by the
// log's append times, at both positions (lag.go, docs/log-format.md).
//
// Readers and fetches of one partition in one process (the lake writer,
// each view of the speed layer, the sinks, Kafka and HTTP-group consumers)
// share the events of the entries they decode: an entry one of them decoded
// and another reaches before the garbage collector takes it is not decoded
// again (decoded.go). Their events are read-only.
//
// Ingest appends, the speed layer, the lake writer and the sinks read and
// commit, the CLI and the HTTP API show topics and lag. Those callers
// declare the small interfaces they need; this package returns concrete
// types.
//
// The package must not serve HTTP, and must not know about views, sinks or
// any other consumer beyond its name: a consumer is a name with offsets.
//
// Durability: on an embedded server with sync "always" an append is
// acknowledged only after its entry is fsynced. With replicas > 1
// nats-server relaxes fsync to "on flush" and an acknowledged entry is on a
// quorum of the replicas instead; a simultaneous power loss of a quorum can
// lose it.
package broker
