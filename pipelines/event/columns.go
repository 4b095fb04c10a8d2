package event

// The columns Lambdaflow adds to a topic's fields where it stores events,
// each named once here: the lake holds all of them after the topic's fields,
// in this order (docs/lake-format.md); a sink's table of a topic holds ColID,
// its key. Field names of a pipeline file cannot start with '_', so they
// never collide.
const (
	ColID         = "_id"          // the event id
	ColPartition  = "_partition"   // the log partition
	ColOffset     = "_offset"      // the event's offset in its partition
	ColEventTime  = "_event_time"  // the event time
	ColIngestTime = "_ingest_time" // when the log stored the event's entry
)
