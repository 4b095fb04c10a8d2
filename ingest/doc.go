// Package ingest is Lambdaflow's HTTP ingest: it decodes request bodies
// once, validates every event against its topic's schema, places each
// event in a partition, groups events of concurrent requests into log
// entries (group commit) and answers only once the log has made every
// event of the request durable.
//
// It owns the endpoint POST /v1/topics/{topic}/events (Routes), the NATS
// subject <prefix>.publish.<topic> (ServeNATS), the entry point of other
// protocols' records (PublishRecords), its readiness (Checks) and its live
// numbers (AddStats), which events carry ids to deduplicate, and the
// batching in front of the log. It must not
// keep events anywhere but in memory on their way to the log, nor answer
// 200 for an event the log has not acknowledged; it knows the log only
// through the Log interface (BrokerLog adapts package broker).
//
// # Request
//
// The body is one JSON object, a JSON array of objects, or NDJSON (objects
// separated by newlines), told apart by the first non-space byte: '[' is an
// array, '{' one object or several. Content-Type may be application/json,
// application/x-ndjson or absent (415 otherwise); it does not change how
// the body is read. Content-Encoding must be absent or identity.
//
// Each object is one flat event; its keys are the topic's schema fields:
//
//   - long and int take integral JSON numbers in range (int is 32-bit);
//     1.0 and 1e3 are integral, 1.5 is not.
//   - double takes any JSON number.
//   - bool takes true or false; string a JSON string (valid UTF-8; a lone
//     \u surrogate becomes U+FFFD).
//   - timestamp takes an RFC 3339 string or an epoch number in the topic's
//     time_unit (s, ms, us; decimals down to microseconds), years 0001 to
//     9999. Without a declared unit numbers are milliseconds, and one that
//     would be before 1973-03-03 is refused: it is most likely epoch
//     seconds, and the unit is never guessed.
//   - the event-time field may be at most topics[].max_future ahead of
//     the ingest time, so that a wrong clock cannot move watermarks.
//   - null, or leaving a field out, is allowed only for optional fields.
//   - a key that is not in the schema is rejected, so that a typo in a
//     producer is an error and not silently lost data; so are nested
//     objects and arrays, and a key given twice.
//
// The key "id" is reserved for the event id: a non-empty string (if the
// schema also has a field named id, the value fills both, and the event id
// is its text). An event without an id gets one from the header
// Idempotency-Key: K, as "K:i" where i is the event's 0-based index in the
// request; without the header a unique one is generated (26 characters,
// ULID-like, time-ordered). The event time is the topic's time field, or
// the ingest time when the topic has none or an optional one is absent.
//
// Every event is validated before anything is appended: a single bad
// event rejects the whole request with 400 and nothing is written.
//
// # Answers
//
// 200, once every event is durable (fsynced on an embedded broker with
// sync always; on a quorum with replicas 3), results in request order:
//
//	{"accepted": 2, "results": [{"partition": 0, "offset": 7, "duplicate": false},
//	                            {"partition": 3, "offset": 12, "duplicate": true}]}
//
// accepted counts the events appended by this request; a duplicate carries
// the partition and offset where its id first landed.
//
// Every error answer is a JSON object with "error". A 400 for a bad event
// adds the 0-based "record", the "field" when one is at fault, and for
// bodies that are not a JSON array the 1-based "line" where the record
// starts; the message repeats them:
//
//	{"error": "line 4: record 3: field \"cpu\": expected double, got string", "record": 3, "line": 4, "field": "cpu"}
//
// Statuses: 400 bad body (also empty); 401 without a valid bearer token
// where the topic has write_tokens (with WWW-Authenticate: Bearer); 403 for
// a token without write access to the topic, or a browser request from a
// foreign web page (see internal/httpapi.Auth); 404 unknown topic; 405
// other methods; 408 a body that did not arrive within http.read_timeout;
// 413 body over ingest.max_body_bytes, a request
// of more events than ingest.max_in_flight, or an event over 512 KiB;
// 415 other content types; 429 when ingest.max_in_flight events are already
// waiting for the log; 503 while ingest starts or stops and when the log is
// unavailable; 507 while the log's disk is full (answered at once; appends
// resume by themselves once space is freed); 500 when the log refused an
// append for another reason. 429, 503 and 507 carry Retry-After.
//
// A 503, 507 or 500 after the log failed means some events of the request may be
// durable and others not. Retry the same request with the same ids (or the
// same Idempotency-Key): the durable ones are answered as duplicates and
// only the rest is appended.
//
// # Authentication
//
// A topic with write_tokens needs "Authorization: Bearer <token>" with one
// of them; tokens are compared as SHA-256 digests in constant time. A topic
// without write_tokens is open. The endpoint is a Write route (Routes): the
// check itself is the process's one access check (internal/httpapi), and
// ingest counts each refusal as an "unauthorized" reject of the topic.
//
// # Partitioning
//
// An event goes to partition FNV-1a-32(key) mod partitions, where key is
// the canonical text of the value of the topic's key field: a string is its
// UTF-8 bytes; long, int and timestamp (UTC microseconds) are decimal
// ("-42"); bool is "true" or "false"; double is Go's
// strconv.FormatFloat(v, 'g', -1, 64) ("0.1", "1e+21"). Events without a
// key field, or with a null key, are placed by their event id the same
// way. event.PartitionOf (package pipelines/event) is the function, for
// producers that write to the log directly.
//
// # Deduplication
//
// A client-given id (its own or from Idempotency-Key) lands once within
// ingest.dedup_window (default 10m), whichever ingest process the request
// or its retry goes through: the log deduplicates (broker.AppendUnique).
// Each process keeps an index of the ids its topics hold, built from the
// log at start (before Ready) and kept current from every entry appended
// since, its own or another process's (it reads those when its expectation
// of the log's end is refused, see docs/log-format.md). At most
// ingest.dedup_max_ids ids per topic are remembered (default 5,000,000; the
// oldest are forgotten first, as 16-byte hashes, ~70 bytes each). A repeat
// within the window is answered duplicate with the partition and offset
// where it first landed, and not appended, also within one request and
// between concurrent requests (a partition's appends are serialised).
// Across processes the guarantee holds within a partition, which a retry of
// the same event (the same key) reaches; within one process, also across
// partitions. Generated ids are not checked (nobody can repeat them).
//
// # Group commit
//
// Each partition has a batcher: events of concurrent requests are gathered
// into one log entry of at most ingest.max_batch events (and about 512 KiB)
// and written with one Append. One Append per partition runs at a time:
// the broker serialises a partition's appends anyway, a second one in
// flight measured no faster, and one keeps a partition's entries in the
// order their requests were accepted. An entry is sent once the previous
// Append has returned and it is full, or its oldest event has waited
// ingest.linger (default 1ms), or nothing could join it: no request of the
// topic is on its way (being read, decoded or handed to the batchers) and
// none is queued. While an Append runs the next entry fills, so under load
// entries are sent back to back; when the log is idle and requests are
// arriving, the first events wait for them, up to linger, which keeps
// entries large (one fsync each) instead of spending an fsync on the first
// small request. A lone request (one client posting one event at a time)
// waits for nobody: its entry is appended at once, so its latency is the
// request's own plus one Append. Memory is bounded by
// ingest.max_in_flight events across requests; the queue in front of each
// batcher is bounded too.
//
// # Other protocols
//
// The same path serves two more ways in. PublishRecords takes the records
// of another protocol (the Kafka listener's produce) for one partition the
// caller names: each record's value is decoded and validated exactly like
// a record of a body (one invalid record rejects them all, *RecordError),
// ids are deduplicated in the same index, and the records that are not
// duplicates get consecutive offsets even when they need more than one
// log entry (their chunks are chained in the batcher, nothing else comes
// between them). ServeNATS answers requests to <prefix>.publish.<topic>:
// the payload is a body as above and the reply is the HTTP answer, with
// the status in the header Lf-Status.
//
// # Metrics
//
// lambdaflow_ingest_events_total{topic}, lambdaflow_ingest_bytes_total{topic},
// lambdaflow_ingest_duplicates_total{topic},
// lambdaflow_ingest_rejects_total{topic,reason} (reason invalid, too_large,
// unauthorized, overloaded, unavailable, disk_full, unknown_topic; the topic label is
// empty for unknown_topic, so URLs cannot create label values),
// lambdaflow_ingest_ack_seconds (arrival to 200) and
// lambdaflow_ingest_batch_events (events per log entry).
package ingest
