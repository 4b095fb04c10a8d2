package event

import (
	"math"
	"time"
)

// FieldType is the type of a topic field.
type FieldType uint8

// Field types. Times are UTC microseconds since the Unix epoch.
const (
	TypeString FieldType = iota + 1
	TypeLong
	TypeInt
	TypeDouble
	TypeBool
	TypeTimestamp
)

var typeNames = map[FieldType]string{
	TypeString: "string", TypeLong: "long", TypeInt: "int",
	TypeDouble: "double", TypeBool: "bool", TypeTimestamp: "timestamp",
}

// String returns the type's name as written in a pipeline file.
func (t FieldType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "unknown"
}

// ParseFieldType parses a type name; "boolean" is accepted for bool.
func ParseFieldType(s string) (FieldType, bool) {
	if s == "boolean" {
		return TypeBool, true
	}
	for t, n := range typeNames {
		if n == s {
			return t, true
		}
	}
	return 0, false
}

// Field is one field of a topic schema.
type Field struct {
	Name     string
	Type     FieldType
	Required bool
	Pos      Pos // where the pipeline file declares it; zero for fields Lambdaflow adds
}

// Pos is a 1-based line and column in a pipeline file.
type Pos struct {
	Line, Col int
}

// Schema is the ordered list of a topic's fields. Order is the order of the
// pipeline file; it fixes column order in the lake and in sink tables.
type Schema []Field

// Index returns the position of the named field, or -1.
func (s Schema) Index(name string) int {
	for i := range s {
		if s[i].Name == name {
			return i
		}
	}
	return -1
}

// Value is one field value of an event. Which member holds it depends on the
// field type: S for string; I for long, int, bool (0 or 1) and timestamp
// (UTC microseconds); F for double. Valid is false for a missing (null) value.
type Value struct {
	S     string
	I     int64
	F     float64
	Valid bool
}

// Event is one decoded event of a topic. Values are in the order of the
// topic's current schema.
type Event struct {
	ID     string
	Time   int64 // event time, UTC microseconds
	Ingest int64 // ingest time, UTC microseconds
	Values []Value
}

// CanonicalFloat folds -0 into 0 and every NaN into one, so that values equal
// for grouping and counting hash and encode the same.
func CanonicalFloat(f float64) float64 {
	if f == 0 {
		return 0
	}
	if f != f {
		return math.NaN()
	}
	return f
}

// GoValue returns v, of type t, as the Go value that stands for it: nil for
// null, string, int64 (long and int), float64, bool, or time.Time in UTC
// (timestamp). Where expressions see fields as these values, and database
// drivers take them.
func GoValue(t FieldType, v Value) any {
	if !v.Valid {
		return nil
	}
	switch t {
	case TypeString:
		return v.S
	case TypeDouble:
		return v.F
	case TypeBool:
		return v.I != 0
	case TypeTimestamp:
		return time.UnixMicro(v.I).UTC()
	}
	return v.I
}
