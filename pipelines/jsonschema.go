package pipelines

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// JSONSchema returns the JSON Schema (draft 2020-12) of the pipeline file, for
// editors and `lambdaflow schema`. It is generated from the same structs and
// tags that drive Load, so the two cannot drift apart: descriptions come from
// `doc`, defaults from `default`, and the enums, required keys and name
// patterns are those that validation enforces. Checks that span several
// values (cross-references, slide <= size) are beyond a schema and left to
// Load.
//
// Every scalar may also be written as a string holding a ${VAR} reference,
// since interpolation happens before types are checked. A sink's own keys
// come from its type in sinks: per type an if/then adds them, so editors
// complete the keys of the type written.
func JSONSchema(sinks SinkTypes) ([]byte, error) {
	g := &schemaGen{defs: &object{}, sinks: sinks}
	root, err := g.structSchema(reflect.TypeFor[Pipeline]())
	if err != nil {
		return nil, err
	}
	out := (&object{}).
		set("$schema", "https://json-schema.org/draft/2020-12/schema").
		set("title", "Lambdaflow pipeline").
		set("description", "A Lambdaflow pipeline file, format version 1: topics, windowed views computed by the speed and the batch layer, and sinks.")
	for _, k := range root.keys {
		out.set(k, root.vals[k])
	}
	g.defs.set("interpolation", (&object{}).
		set("description", "A ${VAR} or ${VAR:default} reference to an environment variable, expanded when the file is loaded.").
		set("type", "string").
		set("pattern", interpolationPattern))
	g.defs.set("duration", (&object{}).
		set("description", "A duration: a number and a unit (ns, us, ms, s, m, h, d), possibly repeated, as in 90s, 1h30m, 7d; or 0.").
		set("anyOf", []any{
			(&object{}).set("type", "string").set("pattern", durationPattern),
			ref("interpolation"),
		}))
	g.defs.set("size", (&object{}).
		set("description", "A size in bytes: a whole number, optionally with a unit KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).").
		set("anyOf", []any{
			(&object{}).set("type", "integer").set("minimum", 0),
			(&object{}).set("type", "string").set("pattern", sizePattern),
			ref("interpolation"),
		}))
	types := []any{}
	for t := event.TypeString; t <= event.TypeTimestamp; t++ {
		types = append(types, t.String(), t.String()+"?")
	}
	types = append(types, "boolean", "boolean?")
	g.defs.set("field_type", (&object{}).
		set("description", "A field type; a trailing '?' makes the field optional.").
		set("anyOf", []any{(&object{}).set("enum", types), ref("interpolation")}))
	out.set("$defs", g.defs)

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and ">" in descriptions readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encode JSON Schema: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

const (
	interpolationPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:[^}]*)?\}`
	durationPattern      = `^(0|[-+]?([0-9]+d|([0-9]+d)?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+))$`
	sizePattern          = `^[0-9]+ ?([KMGTkmgt][Ii]?)?[Bb]$|^[0-9]+$`
	hostPortPattern      = `^(\[[^\]]*\]|[^:\[\]]*):[0-9]{1,5}$`
)

// aggregatePattern matches the calls of every function in the aggregate
// registry, with the arguments each takes.
var aggregatePattern = func() string {
	var alts []string
	for _, f := range aggregate.Funcs() {
		var args []string
		for _, a := range f.Args {
			switch a.Kind {
			case aggregate.ArgField:
				args = append(args, `[A-Za-z][A-Za-z0-9_]*`)
			case aggregate.ArgNumber:
				args = append(args, `[-+0-9.eE]+`)
			}
		}
		alts = append(alts, regexp.QuoteMeta(f.Name)+`\(\s*`+strings.Join(args, `\s*,\s*`)+`\s*\)`)
	}
	return `^\s*(` + strings.Join(alts, "|") + `)\s*$`
}()

// sinkTypesDoc is doc followed by each sink type and what it is.
func sinkTypesDoc(doc string, sinks SinkTypes) string {
	var b strings.Builder
	b.WriteString(doc)
	for _, st := range sinks {
		fmt.Fprintf(&b, " %s: %s.", st.Name, st.Doc)
	}
	return b.String()
}

// aggregatesDoc is doc followed by the aggregate functions of the registry.
func aggregatesDoc(doc string) string {
	var b strings.Builder
	b.WriteString(doc)
	b.WriteString(" Functions:")
	for _, f := range aggregate.Funcs() {
		b.WriteString(" ")
		b.WriteString(f.Doc)
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";") + "."
}

// object is a JSON object that keeps its keys in insertion order, so the
// schema reads in the order of the file format.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) set(k string, v any) *object {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		var vb bytes.Buffer
		enc := json.NewEncoder(&vb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(o.vals[k]); err != nil {
			return nil, err
		}
		b.Write(bytes.TrimRight(vb.Bytes(), "\n"))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func ref(def string) *object { return (&object{}).set("$ref", "#/$defs/"+def) }

// schemaGen generates the schema of struct types, collecting them in defs.
type schemaGen struct {
	defs  *object
	sinks SinkTypes
}

// structSchema returns the schema of struct type t.
func (g *schemaGen) structSchema(t reflect.Type) (*object, error) {
	props := &object{}
	var required []string
	for _, f := range fieldsOf(t) {
		s, err := g.fieldSchema(t, t.Field(f.index), f)
		if err != nil {
			return nil, err
		}
		props.set(f.name, s)
		if f.required {
			required = append(required, f.name)
		}
	}
	o := (&object{}).set("type", "object").set("properties", props)
	if len(required) > 0 {
		o.set("required", required)
	}
	if t == sinkType {
		// The type's own keys are in its if/then below, which
		// additionalProperties would not see.
		c, err := g.sinkConditions()
		if err != nil {
			return nil, err
		}
		return o.set("allOf", c).set("unevaluatedProperties", false), nil
	}
	o.set("additionalProperties", false)
	if c := conditions(t); len(c) > 0 {
		o.set("allOf", c)
	}
	return o, nil
}

// sinkConditions gives per sink type the keys it takes and requires.
func (g *schemaGen) sinkConditions() ([]any, error) {
	var out []any
	for i := range g.sinks {
		st := &g.sinks[i]
		t := st.configType()
		props := &object{}
		var required []string
		for _, f := range fieldsOf(t) {
			s, err := g.fieldSchema(t, t.Field(f.index), f)
			if err != nil {
				return nil, fmt.Errorf("sink type %s: %w", st.Name, err)
			}
			props.set(f.name, s)
			if f.required {
				required = append(required, f.name)
			}
		}
		then := (&object{}).set("properties", props)
		if len(required) > 0 {
			then.set("required", required)
		}
		out = append(out, whenType(st.Name, then))
	}
	return out, nil
}

// whenType is an if/then that applies then to objects whose type is typ.
func whenType(typ string, then *object) *object {
	return (&object{}).
		set("if", (&object{}).
			set("properties", (&object{}).set("type", (&object{}).set("const", typ))).
			set("required", []string{"type"})).
		set("then", then)
}

// defRef returns a reference to struct type t's definition, adding it first.
func (g *schemaGen) defRef(t reflect.Type) (*object, error) {
	name := t.Name()
	name = strings.ToUpper(name[:1]) + name[1:] // fieldSpec -> FieldSpec
	if _, ok := g.defs.vals[name]; !ok {
		g.defs.set(name, nil) // reserve the slot, keeping definitions in first-use order
		s, err := g.structSchema(t)
		if err != nil {
			return nil, err
		}
		g.defs.set(name, s)
	}
	return ref(name), nil
}

// fieldSchema returns the schema of one field of struct owner.
func (g *schemaGen) fieldSchema(owner reflect.Type, sf reflect.StructField, f field) (*object, error) {
	o := &object{}
	if f.doc != "" {
		o.set("description", f.doc)
	}
	if f.hasDef {
		d, err := jsonDefault(sf.Type, f.def)
		if err != nil {
			return nil, fmt.Errorf("default of %s.%s: %w", owner.Name(), sf.Name, err)
		}
		o.set("default", d)
	}
	t := sf.Type
	switch {
	case t == durationType:
		return o.set("$ref", "#/$defs/duration"), nil
	case t == byteSizeType:
		return o.set("$ref", "#/$defs/size"), nil
	case t == schemaType:
		long, err := g.defRef(reflect.TypeFor[fieldSpec]())
		if err != nil {
			return nil, err
		}
		return o.set("type", "object").
			set("minProperties", 1).
			set("propertyNames", (&object{}).set("pattern", fieldNamePattern)).
			set("additionalProperties", (&object{}).set("anyOf", []any{ref("field_type"), long})), nil
	case t == aggregatesType:
		return o.set("description", aggregatesDoc(f.doc)).set("type", "object").
			set("minProperties", 1).
			set("propertyNames", (&object{}).set("pattern", namePattern)).
			set("additionalProperties", (&object{}).set("anyOf", []any{
				(&object{}).set("type", "string").set("pattern", aggregatePattern),
				ref("interpolation"),
			})), nil
	case t.Kind() == reflect.Struct:
		r, err := g.defRef(t)
		if err != nil {
			return nil, err
		}
		return o.set("$ref", r.vals["$ref"]), nil
	case t.Kind() == reflect.Slice:
		var items *object
		if t.Elem().Kind() == reflect.Struct {
			r, err := g.defRef(t.Elem())
			if err != nil {
				return nil, err
			}
			items = r
		} else {
			is, err := scalarSchema(t.Elem(), nil)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", owner.Name(), sf.Name, err)
			}
			items = is
		}
		o.set("type", "array").set("items", items)
		if f.required {
			o.set("minItems", 1)
		}
		return o, nil
	}
	c := constraint(owner.Name() + "." + sf.Name)
	if f.pattern != "" {
		c = append(c, kv{"pattern", f.pattern})
	}
	enum := f.enum
	if slices.Equal(enum, []string{sinkTypesEnum}) {
		enum = g.sinks.Names()
		o.set("description", sinkTypesDoc(f.doc, g.sinks))
	}
	if len(enum) > 0 {
		vals, err := enumValues(t, enum)
		if err != nil {
			return nil, fmt.Errorf("enum of %s.%s: %w", owner.Name(), sf.Name, err)
		}
		c = append(c, kv{"enum", vals})
	}
	if f.required && t.Kind() == reflect.String && len(c) == 0 {
		c = append(c, kv{"minLength", 1})
	}
	s, err := scalarSchema(t, c)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", owner.Name(), sf.Name, err)
	}
	for _, k := range s.keys {
		o.set(k, s.vals[k])
	}
	return o, nil
}

type kv struct {
	k string
	v any
}

// scalarSchema returns the schema of a scalar of type t with constraints c.
// Only plain unconstrained strings can do without the interpolation
// alternative: they accept a ${VAR} string anyway.
func scalarSchema(t reflect.Type, c []kv) (*object, error) {
	base := &object{}
	switch t.Kind() {
	case reflect.String:
		base.set("type", "string")
	case reflect.Bool:
		base.set("type", "boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		base.set("type", "integer")
	default:
		return nil, fmt.Errorf("no JSON Schema for Go type %s", t)
	}
	for _, x := range c {
		base.set(x.k, x.v)
	}
	if t.Kind() == reflect.String && len(c) == 0 {
		return base, nil
	}
	return (&object{}).set("anyOf", []any{base, ref("interpolation")}), nil
}

// constraint lists the extra constraints of a field, named Type.Field, that
// validation enforces and a schema can state.
func constraint(field string) []kv {
	switch field {
	case "Pipeline.Version":
		return []kv{{"const", 1}}
	case "Pipeline.Name":
		return []kv{{"pattern", pipelineNamePattern}}
	case "Topic.Name", "View.Name", "View.From":
		return []kv{{"pattern", namePattern}}
	case "Sink.Name":
		return []kv{{"pattern", sinkNamePattern}}
	case "Broker.Prefix":
		return []kv{{"pattern", prefixPattern}}
	case "HTTP.Listen", "Broker.Listen":
		return []kv{{"pattern", hostPortPattern}}
	case "Topic.Key", "Topic.Time":
		return []kv{{"pattern", fieldNamePattern}}
	case "Topic.Partitions":
		return []kv{{"minimum", 1}, {"maximum", 1024}}
	case "Ingest.MaxBodyBytes", "Ingest.MaxInFlight", "Ingest.DedupMaxIDs", "Ingest.MaxBatch",
		"LakeRoll.MaxRows", "SinkBatch.MaxRows":
		return []kv{{"minimum", 1}}
	case "Compact.MinFiles":
		return []kv{{"minimum", 2}}
	case "SinkBatch.MaxRetries":
		return []kv{{"minimum", 0}}
	}
	return nil
}

// conditions states the type-dependent required keys of windows.
func conditions(t reflect.Type) []any {
	when := func(typ string, keys ...string) any {
		return whenType(typ, (&object{}).set("required", keys))
	}
	if t == reflect.TypeFor[Window]() {
		return []any{when("tumbling", "size"), when("hopping", "size", "slide"), when("session", "gap")}
	}
	return nil
}

// jsonDefault converts a `default` tag to the JSON value of the field's type.
func jsonDefault(t reflect.Type, def string) (any, error) {
	if t == durationType || t == byteSizeType {
		return def, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return strconv.ParseBool(def)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.ParseInt(def, 10, 64)
	}
	return def, nil
}

// enumValues converts an `enum` tag to JSON values of the field's type.
func enumValues(t reflect.Type, enum []string) ([]any, error) {
	out := make([]any, len(enum))
	for i, e := range enum {
		v, err := jsonDefault(t, e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
