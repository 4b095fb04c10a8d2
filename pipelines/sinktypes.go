package pipelines

import (
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// SinkType declares one kind of sink to the pipeline file: its name, the
// keys it takes beside the common ones (name, type, from, create, batch) and
// the checks of those keys beyond their tags. Load, validation and the JSON
// Schema are driven by it; the sinks packages declare their types and the
// program that loads a file passes them in (this package knows none).
type SinkType struct {
	Name string
	// Doc says in one line what the type delivers to.
	Doc string
	// NewConfig returns a pointer to a new zero configuration struct. Its
	// exported fields are the type's keys, with the tags of the pipeline
	// file's own structs: yaml (the key), doc, default, enum, required, and
	// pattern with rule (a regular expression a non-empty string must match,
	// and how messages state it). A required key missing or empty is
	// reported "is required for <type> sinks".
	NewConfig func() any
	// Check, when set, checks a decoded configuration (what NewConfig
	// returned, filled in) beyond its tags, reporting through c.
	Check func(config any, c SinkCheck)
}

// SinkCheck reports problems of a sink's own keys. Keys are relative to the
// sink: "dsn", "hosts[1]". Messages get the file, line, column and YAML path
// of the key like every other problem of the file.
type SinkCheck interface {
	// Errorf reports a problem with the value at key, or where the sink is
	// when the key is not in the file.
	Errorf(key, format string, args ...any)
	// Present reports whether key is written in the file.
	Present(key string) bool
	// HostPort checks that s is host:port with a port from 0 to 65535.
	HostPort(key, s string)
}

// SinkTypes is the table of sink types a program supports, in the order
// messages and the JSON Schema list them.
type SinkTypes []SinkType

// Lookup returns the named type.
func (ts SinkTypes) Lookup(name string) (*SinkType, bool) {
	i := slices.IndexFunc(ts, func(t SinkType) bool { return t.Name == name })
	if i < 0 {
		return nil, false
	}
	return &ts[i], true
}

// Names returns the type names in table order.
func (ts SinkTypes) Names() []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// configType returns the struct type of the type's configuration.
func (t *SinkType) configType() reflect.Type {
	return reflect.TypeOf(t.NewConfig()).Elem()
}

// Quote quotes a value for a message the way every message of the file
// does, shortened so that a long value does not hide the message.
func Quote(s string) string { return quote(s) }

// sinkKeys lists the keys of sink v: the common ones, and in place of its
// Config field the keys of every sink type in table order. Those of the
// sink's own type decode into a new configuration stored in Config; those
// of other types are foreign. When the type is unknown (validation reports
// it) the keys of every type are accepted into throwaway values, so that
// the sink gets no other complaint.
func (d *decoder) sinkKeys(v reflect.Value, es []entry, path string) []boundKey {
	typ := ""
	for _, e := range es {
		if val := resolve(e.val); e.name == "type" && val.Kind == yaml.ScalarNode {
			typ, _ = interpolate(val.Value, d.env)
		}
	}
	own, known := d.sinks.Lookup(typ)
	var keys []boundKey
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Tag.Get("inline") == "sink_config" {
			for j := range d.sinks {
				st := &d.sinks[j]
				cfg := reflect.ValueOf(st.NewConfig()).Elem()
				foreign := st.Name
				switch {
				case !known:
					foreign = ""
				case st == own:
					d.defaults(cfg, path)
					v.Field(i).Set(cfg.Addr())
					foreign = ""
				}
				for _, f := range fieldsOf(cfg.Type()) {
					keys = append(keys, boundKey{name: f.name, val: cfg.Field(f.index), foreign: foreign})
				}
			}
			continue
		}
		if name := sf.Tag.Get("yaml"); sf.IsExported() && name != "-" && name != "" {
			keys = append(keys, boundKey{name: name, val: v.Field(i)})
		}
	}
	return keys
}
