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

// Columns is a batch of events of one schema held column by column, as a
// columnar reader (the lake's) produces them and a batch engine consumes
// them: row i is Time[i], ID[i], Ingest[i] and Fields[f]'s value i. Its
// slices belong to whoever filled it and are usually reused for the next
// batch; strings stay valid (they never point into recycled buffers).
type Columns struct {
	Len    int
	Time   []int64
	Ingest []int64  // nil when not read
	ID     []string // nil when not read
	Fields []Column // one per schema field, in schema order
}

// Column is one field's values in a Columns batch. The member that holds
// them follows the field's type as in Value: I for long, int, bool and
// timestamp, F for double, and for strings either S or, for
// dictionary-encoded data, Words[Idx[i]] (a reader hands a dictionary's
// indices on instead of copying strings, which lets consumers work per
// dictionary word: group ids, hashes, predicates). Valid is nil when every
// value of the batch is present; a null row holds the zero value (index 0
// into a non-empty Words for dictionary data). A field not read has Read
// false and no values: it reads as null.
type Column struct {
	Read  bool
	Valid []bool
	I     []int64
	F     []float64
	S     []string
	Idx   []int32
	Words []string
}

// Null reports whether row i is null.
func (c *Column) Null(i int) bool {
	return !c.Read || c.Valid != nil && !c.Valid[i]
}

// Str returns row i's string (the column must hold strings).
func (c *Column) Str(i int) string {
	if c.Idx != nil {
		return c.Words[c.Idx[i]]
	}
	return c.S[i]
}

// Value returns row i as a Value of type t, the column's field type.
func (c *Column) Value(i int, t FieldType) Value {
	if c.Null(i) {
		return Value{}
	}
	switch t {
	case TypeString:
		return Value{S: c.Str(i), Valid: true}
	case TypeDouble:
		return Value{F: c.F[i], Valid: true}
	}
	return Value{I: c.I[i], Valid: true}
}

// Event fills e with row i of the batch, for code that works on events
// one at a time. e.Values is reused when it has the room.
func (cs *Columns) Event(i int, schema Schema, e *Event) {
	if cap(e.Values) < len(cs.Fields) {
		e.Values = make([]Value, len(cs.Fields))
	}
	e.Values = e.Values[:len(cs.Fields)]
	e.ID, e.Time, e.Ingest = "", cs.Time[i], 0
	if cs.ID != nil {
		e.ID = cs.ID[i]
	}
	if cs.Ingest != nil {
		e.Ingest = cs.Ingest[i]
	}
	for f := range cs.Fields {
		e.Values[f] = cs.Fields[f].Value(i, schema[f].Type)
	}
}
