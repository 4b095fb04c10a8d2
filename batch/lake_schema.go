package batch

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// metaColumns is the number of metadata columns after the topic's fields:
// event.ColID, event.ColPartition, event.ColOffset, event.ColEventTime and event.ColIngestTime.
const metaColumns = 5

// lakeSchema is the Parquet schema of one topic's lake files: the topic's
// fields in pipeline order, then the metadata columns.
type lakeSchema struct {
	fields event.Schema
	// optional[i] says column i may hold nulls (definition level 1).
	optional []bool
	// stats[i] says column i keeps its chunks' statistics in the footer.
	stats []bool
}

// newLakeSchema builds the Parquet schema for a topic schema, with every
// column's fixed encoding.
func newLakeSchema(fields event.Schema) (*lakeSchema, error) {
	ls := &lakeSchema{fields: fields}
	for _, f := range fields {
		switch f.Name {
		case event.ColID, event.ColPartition, event.ColOffset, event.ColEventTime, event.ColIngestTime:
			return nil, fmt.Errorf("lake: topic field %q collides with a lake metadata column", f.Name)
		}
		ls.optional = append(ls.optional, !f.Required)
		ls.stats = append(ls.stats, f.Type == event.TypeTimestamp)
	}
	for _, m := range metaColumnTypes {
		ls.optional = append(ls.optional, false)
		ls.stats = append(ls.stats, m.name != event.ColID)
	}
	// Every file's schema is built from the same fields: one built now
	// reports a field the lake cannot store before any file is written.
	if _, err := ls.schemaFor(nil, nil, nil); err != nil {
		return nil, err
	}
	return ls, nil
}

// metaColumnTypes are the metadata columns' types and fixed encodings.
var metaColumnTypes = []struct {
	name, logical, enc string
	t                  reflect.Type
}{
	// Ids are unique, so a dictionary never pays; zstd's best level over
	// plain values beats delta byte arrays on numbered ids in daily-sized
	// files (1.71 vs 1.96 B/row); larger files try both (plan).
	{event.ColID, "", "plain", reflect.TypeFor[string]()},
	{event.ColPartition, "", "dict", reflect.TypeFor[int32]()},
	{event.ColOffset, "", "delta", reflect.TypeFor[int64]()},
	{event.ColEventTime, "timestamp(microsecond:utc)", "delta", reflect.TypeFor[int64]()},
	{event.ColIngestTime, "timestamp(microsecond:utc)", "delta", reflect.TypeFor[int64]()},
}

// schemaFor builds the Parquet schema of a file encoded by plan (nil: the
// fixed encodings), its delta-packed columns packed by delta (nil:
// parquet-go's encoder), the dictionaries of its numeric columns started
// from seeds (nil: none). The schema is made from a Go struct type built at run
// time, because parquet.Group orders columns by name and the lake keeps
// the pipeline file's order. Only encodings differ from plan to plan:
// names, types and order are the lake's.
func (ls *lakeSchema) schemaFor(plan encodingPlan, delta encoding.Encoding, seeds *dictSeeds) (*parquet.Schema, error) {
	sf := make([]reflect.StructField, 0, len(ls.fields)+metaColumns)
	tag := func(col int, name, logical, enc string) reflect.StructTag {
		if col < len(plan) {
			switch plan[col] {
			case encDict:
				enc = "dict"
			case encPlain:
				enc = "plain"
			case encDeltaBytes:
				enc = "delta" // DELTA_BYTE_ARRAY on strings
			}
		}
		opt := ""
		if ls.optional[col] {
			opt = ",optional"
		}
		if logical != "" {
			logical = "," + logical
		}
		if enc != "" {
			enc = "," + enc
		}
		// No codec: the file writer compresses every column with the
		// lake's codec (lake_codec.go).
		return reflect.StructTag(`parquet:"` + name + opt + logical + enc + `"`)
	}
	for i, f := range ls.fields {
		t, logical, enc, err := columnOf(f.Type)
		if err != nil {
			return nil, fmt.Errorf("lake: field %q: %w", f.Name, err)
		}
		sf = append(sf, reflect.StructField{Name: "F" + strconv.Itoa(i), Type: t, Tag: tag(i, f.Name, logical, enc)})
	}
	for i, m := range metaColumnTypes {
		sf = append(sf, reflect.StructField{Name: "M" + strconv.Itoa(i), Type: m.t, Tag: tag(len(ls.fields)+i, m.name, m.logical, m.enc)})
	}
	var schema *parquet.Schema
	var err error
	func() {
		// SchemaOf panics on tags it cannot honour; the tags above are
		// fixed, so a panic here is a bug, reported as an error all the same.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("lake: building the Parquet schema: %v", r)
			}
		}()
		schema = parquet.SchemaOf(reflect.New(reflect.StructOf(sf)).Elem().Interface())
	}()
	if err != nil || delta == nil && seeds == nil {
		return schema, err
	}
	// Struct tags name only parquet-go's own encodings and types: the
	// lake's delta packing replaces parquet-go's on the leaves they made
	// delta-packed, and numeric dictionaries are seeded (lake_dict_seed.go).
	fields := slices.Clone(schema.Fields())
	for i, f := range fields {
		e := f.Encoding()
		if e == nil {
			continue
		}
		switch kind := f.Type().Kind(); {
		case delta != nil && e.Encoding() == format.DeltaBinaryPacked:
			fields[i] = encodedField{Field: f, enc: delta}
		case seeds != nil && e.Encoding() == format.RLEDictionary && kind != parquet.ByteArray && kind != parquet.Boolean:
			fields[i] = typedField{Field: f, typ: seededType{Type: f.Type(), seeds: seeds, col: i}}
		}
	}
	return parquet.NewSchema(schema.Name(), fieldGroup{Node: schema, fields: fields}), nil
}

// encodedField is a schema field with another encoding (parquet.Encoded
// wraps a node, which a group's fields are not).
type encodedField struct {
	parquet.Field
	enc encoding.Encoding
}

func (f encodedField) Encoding() encoding.Encoding { return f.enc }

// fieldGroup is a group node with the given fields, in their order.
type fieldGroup struct {
	parquet.Node
	fields []parquet.Field
}

func (g fieldGroup) Fields() []parquet.Field { return g.fields }

// columnOf maps a field type to its Go carrier type, Parquet logical type
// option and fixed encoding.
func columnOf(t event.FieldType) (reflect.Type, string, string, error) {
	switch t {
	case event.TypeString:
		return reflect.TypeFor[string](), "", "dict", nil
	case event.TypeLong:
		// Delta packing stores small or slowly changing integers (counts,
		// sizes, counters) in a few bits each; zstd then finds repeats.
		return reflect.TypeFor[int64](), "", "delta", nil
	case event.TypeInt:
		return reflect.TypeFor[int32](), "", "delta", nil
	case event.TypeDouble:
		// Byte stream split puts each byte of the values in a stream of
		// its own: the exponent and high mantissa bytes of measurements
		// (delays, durations, prices) repeat, and the low bytes of values
		// that are whole or short decimals are mostly zero, so zstd gets
		// far more out of them than out of plain doubles (1.4 against 1.8
		// B/row on the backfill benchmark's delays).
		return reflect.TypeFor[float64](), "", "split", nil
	case event.TypeBool:
		// Booleans are bit-packed (PLAIN).
		return reflect.TypeFor[bool](), "", "", nil
	case event.TypeTimestamp:
		return reflect.TypeFor[int64](), "timestamp(microsecond:utc)", "delta", nil
	}
	return nil, "", "", fmt.Errorf("unsupported type %v", t)
}
