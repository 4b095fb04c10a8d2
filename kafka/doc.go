// Package kafka is Lambdaflow's Kafka wire-protocol listener: Kafka clients
// (librdkafka and kcat, confluent-kafka, the Java client, franz-go) produce
// to and consume from a pipeline's topics unchanged. The wire format is
// franz-go's kmsg; the broker logic is this package's.
//
// Each topic of the pipeline file is a Kafka topic with the same name and
// partitions, and Kafka offsets are Lambdaflow's offsets: the event a
// consumer reads at offset o of partition p is the one the message browser
// shows there, whether it was produced over Kafka, HTTP or NATS.
//
// It owns the listener (kafka.listen, TLS, SASL/PLAIN), the request
// handlers, the record-batch codec and the consumer-group coordinator. It
// must not write to the log but through ingest (PublishRecords: the same
// validation, deduplication, group commit and fsync before the answer as
// HTTP ingest), nor keep anything that must survive a restart in memory:
// committed offsets are in the log's offsets bucket, group state in the
// key-value bucket <prefix>_kafka_groups, both through package broker.
//
// # Produce
//
// A record's value is one event as a JSON object, validated against the
// topic's schema like a record of an HTTP body; its header "id" is the
// event id (deduplicated as over HTTP: a repeat within ingest.dedup_window
// is not appended again); its key and timestamp are not used (the producer
// picked the partition; the event time is the topic's time field). One
// invalid record fails its partition's batch with INVALID_RECORD (the
// record's index and the reason in the answer) and nothing of that batch
// is written; other partitions of the request are unaffected. The answer
// comes once the batch is durable, whatever acks asked for (acks=0 gets no
// answer, as in Kafka). The records of a batch get consecutive offsets
// from the base offset answered; records that were duplicates keep their
// first offsets, and the base is then the first record appended.
//
// The idempotent producer works as in Kafka: InitProducerId hands out ids
// unique across processes, a retried batch is answered with its original
// offset and not appended again, a gap in sequence numbers is
// OUT_OF_ORDER_SEQUENCE_NUMBER. Transactions are refused. Records may be
// compressed with gzip, snappy, lz4 or zstd.
//
// # Fetch
//
// Fetch answers record batches, one per log entry, uncompressed, with
// LogAppendTime timestamps (the entry's ingest time); a record's value is
// the event as JSON (the topic's fields in schema order), its key the
// canonical text of the topic's key field, its header "id" the event id.
// ListOffsets finds the earliest (-2), latest (-1) and last (-3) offsets
// and offsets by timestamp (store time). A Fetch waits up to MaxWaitMs for
// MinBytes, woken by appends from any process.
//
// # Groups
//
// Consumer groups follow Kafka's classic protocol (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup; the assignors — range, roundrobin,
// cooperative-sticky — run in the clients, the coordinator relays). Every
// process answers FindCoordinator with itself: a group's state is one
// record in the key-value bucket, changed only with compare-and-set, so
// processes of one pipeline coordinate the same group consistently, and a
// rebalance, a session expiry or a member's wait sees changes made
// anywhere. Committed offsets are the positions of consumer
// "kafka.<group>", shown by GET /v1/lag and the lag metrics, and survive
// restarts.
//
// # Authentication
//
// SASL/PLAIN takes a pipeline token as the password (any user name): a
// token of auth.read_tokens may fetch, list offsets and use groups, a token
// of a topic's write_tokens may produce to it. What has no tokens is open,
// as over HTTP. A failed authentication is answered
// SASL_AUTHENTICATION_FAILED and the connection closed. kafka.tls enables
// TLS (mutual with client_ca).
//
// # Limits
//
// A request larger than kafka.max_request_bytes closes its connection (as
// Kafka does), a compressed batch may not inflate past it either, a Fetch
// answer holds at most kafka.max_fetch_bytes of records, and at most
// kafka.max_connections connections are open. Requests of one connection
// are answered one at a time, in order, as Kafka does.
package kafka
