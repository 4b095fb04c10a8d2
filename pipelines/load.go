package pipelines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Load reads, decodes and validates the pipeline file at path; see Parse.
// A file that cannot be read gives a wrapped *os.PathError, an invalid one
// an Errors.
func Load(path string, env func(string) (string, bool), sinks SinkTypes) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load pipeline: %w", err)
	}
	return Parse(path, data, env, sinks)
}

// Parse decodes and validates one pipeline file held in data; file names it
// in messages and becomes Pipeline.File.
//
// Decoding is strict: defaults from the `default` tags come first, then the
// file's values (after ${VAR} interpolation, see interpolate), and any key the
// format does not know is an error. env looks variables up; pass os.LookupEnv
// for the process environment, or nil for an empty one. sinks are the sink
// types the program supports, which declare the keys of each type; a sink of
// another type is an error.
//
// On any problem Parse returns nil and an Errors holding every problem in the
// file, sorted by position; it never returns a partly valid pipeline.
func Parse(file string, data []byte, env func(string) (string, bool), sinks SinkTypes) (*Pipeline, error) {
	return parse(file, data, env, sinks, maxNodes)
}

// parse is Parse with a node budget of its own, for tests.
func parse(file string, data []byte, env func(string) (string, bool), sinks SinkTypes, budget int) (*Pipeline, error) {
	d := &decoder{
		file:   file,
		sinks:  sinks,
		env:    env,
		pos:    positions{val: map[string]Pos{}, key: map[string]Pos{}, bad: map[string]bool{}},
		budget: budget,
	}
	if root := d.document(data); root != nil {
		p := &Pipeline{File: file}
		v := reflect.ValueOf(p).Elem()
		d.defaults(v, "")
		d.decode(root, v, "")
		addSiteFields(p)
		if d.budget > 0 {
			d.errs = append(d.errs, validate(p, d.pos, d.sinks)...)
		}
		if len(d.errs) == 0 {
			return p, nil
		}
	}
	return nil, d.finish()
}

// maxNodes bounds the work of decoding one file. Aliases let a small file
// name the same large mapping many times; real pipelines are far below this.
const maxNodes = 1 << 20

// positions records where each YAML path was found, for validation messages.
type positions struct {
	val map[string]Pos  // the value at each path present in the file
	key map[string]Pos  // the key of each mapping entry
	bad map[string]bool // paths that failed to decode; validation is quiet about them
}

type decoder struct {
	file   string
	sinks  SinkTypes
	env    func(string) (string, bool)
	pos    positions
	errs   Errors
	budget int // nodes left to decode; at 0 decoding stops and validation is skipped
}

var (
	durationType   = reflect.TypeFor[Duration]()
	byteSizeType   = reflect.TypeFor[ByteSize]()
	schemaType     = reflect.TypeFor[event.Schema]()
	aggregatesType = reflect.TypeFor[Aggregates]()
	posType        = reflect.TypeFor[Pos]()
	sinkType       = reflect.TypeFor[Sink]()
)

// errorf records a problem with node n, found at path.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errorAt(nodePos(n), path, format, args...)
}

// errorAt records a problem at p, found at path, and keeps validation quiet
// about path and what lies below it.
func (d *decoder) errorAt(p Pos, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Col: p.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
	if path != "" {
		d.pos.bad[path] = true
	}
}

// finish drops repeated problems (a merged anchor is decoded once per use)
// and sorts the rest by position.
func (d *decoder) finish() Errors {
	seen := map[Error]bool{}
	out := d.errs[:0]
	for _, e := range d.errs {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	out.sort()
	return out
}

// document parses data into the root mapping node, or records why it cannot.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &Error{File: d.file, Line: 1, Col: 1, Msg: "empty file: want a pipeline (version: 1, name, topics, ...)"})
		} else {
			d.syntaxError(err, data)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.errorf(&extra, "", "a pipeline file holds one YAML document, and a second one starts here")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(err, data)
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorf(&doc, "", "empty file: want a pipeline (version: 1, name, topics, ...)")
		return nil
	}
	root := resolve(doc.Content[0])
	switch {
	case isNull(root):
		d.errorf(root, "", "empty file: want a pipeline (version: 1, name, topics, ...)")
		return nil
	case root.Kind != yaml.MappingNode:
		d.errorf(root, "", "a pipeline file must be a mapping (version: 1, name, topics, ...), got %s", DescribeNode(root))
		return nil
	}
	return root
}

// syntaxError turns yaml's "yaml: line 3: could not find expected ':'" into an
// Error. yaml reports no column, so the column is 1.
func (d *decoder) syntaxError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, tail
				// yaml counts lines from 0 in its parser's messages and
				// from 1 in its scanner's.
				if slices.Contains(yamlParserProblems, msg) {
					line++
				}
			}
		}
	}
	// In { } and [ ], YAML reads a '?' as an indicator, which trips users
	// who write an optional type the short way.
	if strings.HasPrefix(msg, "did not find expected ',' or") && optionalInFlow.Match(data) {
		msg += ` (inside { } or [ ], quote optional types: "string?")`
	}
	e := &Error{File: d.file, Line: line, Msg: "invalid YAML: " + msg}
	if line > 0 {
		e.Col = 1
	}
	d.errs = append(d.errs, e)
}

var optionalInFlow = regexp.MustCompile(`\w\?\s*[,}\]]`)

// yamlParserProblems are the messages of yaml's parser (parserc.go), as
// opposed to its scanner.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"did not find expected '-' indicator", "did not find expected <document start>",
	"did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive",
	"found duplicate %YAML directive", "found incompatible YAML document",
	"found undefined tag handle",
}

// spend takes one node from the budget; false means stop decoding.
func (d *decoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget == 0 {
		d.errorf(n, "", "the file is too complex to decode (too many nodes after expanding aliases)")
	}
	return d.budget > 0
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func nodePos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// DescribeNode names what a YAML node is, for "must be X, got Y" messages
// here and in files that embed pipeline values (pipeline tests).
func DescribeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return quote(n.Value)
	}
	return "nothing"
}

// quote quotes a value for a message, shortened so a long value does not
// hide the message.
func quote(s string) string {
	if r := []rune(s); len(r) > 40 {
		s = string(r[:37]) + "..."
	}
	return strconv.Quote(s)
}

// decode decodes n into v, which is found at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(n) {
		return
	}
	d.pos.val[path] = nodePos(n)
	n = resolve(n)
	if isNull(n) {
		return // "key:" with no value keeps the default
	}
	switch v.Type() {
	case schemaType:
		d.schema(n, v, path)
		return
	case aggregatesType:
		d.aggregates(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	default:
		s, ok := d.scalar(n, path, what(v.Type()))
		if !ok {
			return
		}
		if w, ok := setScalar(v, s); !ok {
			d.errorf(n, path, "must be %s, got %s", w, quote(s))
		}
	}
}

// scalar returns the interpolated text of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be %s, got %s", what, DescribeNode(n))
		return "", false
	}
	s, err := interpolate(n.Value, d.env)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false
	}
	return s, true
}

// what names the kind of value t holds, for messages.
func what(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration like 90s, 5m, 168h or 7d"
	case byteSizeType:
		return "a size like 1024, 64KiB, 10MB or 2GiB"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Struct:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// setScalar converts s to v's type and stores it. On failure it returns what
// v must hold, for the message.
func setScalar(v reflect.Value, s string) (string, bool) {
	switch v.Type() {
	case durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return what(v.Type()), false
		}
		v.SetInt(int64(d))
		return "", true
	case byteSizeType:
		b, err := ParseByteSize(s)
		if err != nil {
			return what(v.Type()), false
		}
		v.SetInt(int64(b))
		return "", true
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			return what(v.Type()), false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		// YAML writes big numbers as 1_000_000.
		n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
		if err != nil {
			return what(v.Type()), false
		}
		v.SetInt(n)
	default:
		return what(v.Type()), false
	}
	return "", true
}

// field is one decodable field of a struct, described by its tags.
type field struct {
	index    int
	name     string // the YAML key
	doc      string
	def      string
	hasDef   bool
	required bool
	enum     []string // sinkTypesEnum: the names of the sink types
	pattern  string   // a non-empty string must match it
	rule     string   // the pattern in words, for messages
}

// sinkTypesEnum in an enum tag stands for the names of the sink types.
const sinkTypesEnum = "$sink_types"

// fieldsOf lists the decodable fields of struct type t in declaration order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fi := field{index: i, name: name, doc: f.Tag.Get("doc"), required: f.Tag.Get("required") == "true"}
		fi.def, fi.hasDef = f.Tag.Lookup("default")
		if e := f.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		fi.pattern, fi.rule = f.Tag.Get("pattern"), f.Tag.Get("rule")
		out = append(out, fi)
	}
	return out
}

// defaults applies the `default` tags of struct v and of the structs nested
// in it. Elements of lists get theirs when they are decoded.
func (d *decoder) defaults(v reflect.Value, path string) {
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if f.hasDef {
			if w, ok := setScalar(fv, f.def); !ok {
				// A bug in a tag, not in the file; TestDefaultsParse keeps it out.
				d.errs = append(d.errs, &Error{File: d.file, Path: keyPath(path, f.name), Msg: fmt.Sprintf("invalid default %q: must be %s", f.def, w)})
			}
		}
		if fv.Kind() == reflect.Struct {
			d.defaults(fv, keyPath(path, f.name))
		}
	}
}

// entry is one key: value pair of a mapping, after merge keys are expanded.
type entry struct {
	name     string
	key, val *yaml.Node
}

// entries lists the pairs of mapping n in file order. A merge key ("<<: *base"
// or "<<: [*a, *b]") contributes the pairs of the mappings it names, except
// keys the mapping sets itself; between merged mappings the first one wins.
// A key given twice is an error.
func (d *decoder) entries(n *yaml.Node, path string, depth int) []entry {
	explicit := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if isMergeKey(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be strings, got %s", DescribeNode(k))
			continue
		}
		if first, dup := explicit[k.Value]; dup {
			d.errorf(k, keyPath(path, k.Value), "duplicate key (first on line %d)", first.Line)
			continue
		}
		explicit[k.Value] = k
	}
	var out []entry
	merged := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if !isMergeKey(k) {
			if k.Kind == yaml.ScalarNode && explicit[k.Value] == k {
				out = append(out, entry{name: k.Value, key: k, val: val})
			}
			continue
		}
		for _, e := range d.merge(val, keyPath(path, "<<"), depth) {
			if explicit[e.name] == nil && !merged[e.name] {
				merged[e.name] = true
				out = append(out, e)
			}
		}
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// merge returns the pairs a merge key brings in.
func (d *decoder) merge(val *yaml.Node, path string, depth int) []entry {
	if depth > 10 {
		d.errorf(val, path, "merge keys nested too deeply")
		return nil
	}
	if !d.spend(val) {
		return nil
	}
	val = resolve(val)
	switch val.Kind {
	case yaml.MappingNode:
		return d.entries(val, path, depth+1)
	case yaml.SequenceNode:
		var out []entry
		for _, m := range val.Content {
			if m = resolve(m); m.Kind != yaml.MappingNode {
				d.errorf(m, path, "must be a mapping or a list of mappings, got %s in the list", DescribeNode(m))
				continue
			}
			out = append(out, d.entries(m, path, depth+1)...)
		}
		return out
	}
	d.errorf(val, path, "must be a mapping or a list of mappings, got %s", DescribeNode(val))
	return nil
}

// structure decodes mapping n into struct v, rejecting unknown keys.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping, got %s", DescribeNode(n))
		return
	}
	if pf := v.FieldByName("Pos"); pf.IsValid() && pf.Type() == posType {
		pf.Set(reflect.ValueOf(d.pos.val[path]))
	}
	es := d.entries(n, path, 0)
	var keys []boundKey
	if v.Type() == sinkType {
		keys = d.sinkKeys(v, es, path)
	} else {
		for _, f := range fieldsOf(v.Type()) {
			keys = append(keys, boundKey{name: f.name, val: v.Field(f.index)})
		}
	}
	for _, e := range es {
		fp := keyPath(path, e.name)
		k, ok := lookupKey(keys, e.name)
		if !ok {
			names := make([]string, len(keys))
			for j, k := range keys {
				names[j] = k.name
			}
			d.errorf(e.key, fp, "unknown key%s", didYouMean(e.name, names))
			continue
		}
		d.pos.key[fp] = nodePos(e.key)
		d.decode(e.val, k.val, fp)
		if k.foreign != "" && !d.pos.bad[fp] {
			d.errorAt(d.pos.val[fp], fp, "only applies to %s sinks", k.foreign)
		}
	}
}

// boundKey is a key a mapping may hold and the value it decodes into.
type boundKey struct {
	name string
	val  reflect.Value
	// foreign is set for a key of another sink type than the sink's: it is
	// decoded (into a throwaway value) to check it, then refused with this
	// type's name.
	foreign string
}

// lookupKey finds a key, preferring one of the struct's own to a foreign one.
func lookupKey(keys []boundKey, name string) (boundKey, bool) {
	found, ok := boundKey{}, false
	for _, k := range keys {
		if k.name == name {
			if k.foreign == "" {
				return k, true
			}
			if !ok {
				found, ok = k, true
			}
		}
	}
	return found, ok
}

// sequence decodes list n into slice v.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			hint = fmt.Sprintf(" (write [%s] for a list of one)", n.Value)
		}
		d.errorf(n, path, "must be a list, got %s%s", DescribeNode(n), hint)
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, c := range n.Content {
		ep := indexPath(path, i)
		e := reflect.New(v.Type().Elem()).Elem()
		if e.Kind() == reflect.Struct {
			d.defaults(e, ep)
		}
		d.decode(c, e, ep)
		out = reflect.Append(out, e)
	}
	v.Set(out)
}

// fieldSpec is the long form of a schema field: {type: T, required: false}.
type fieldSpec struct {
	Type     string `yaml:"type" required:"true" enum:"string,long,int,double,bool,boolean,timestamp" doc:"Field type: string, long, int, double, bool or timestamp."`
	Required bool   `yaml:"required" default:"true" doc:"Whether every event must have the field; false allows it to be missing or null."`
}

const typeHelp = "want string, long, int, double, bool or timestamp"

// schema decodes a topic schema: an ordered mapping from field name to
// "type", "type?" (optional) or {type: T, required: bool}.
func (d *decoder) schema(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of field name to type, got %s", DescribeNode(n))
		return
	}
	var out event.Schema
	for _, e := range d.entries(n, path, 0) {
		fp := keyPath(path, e.name)
		d.pos.key[fp] = nodePos(e.key)
		d.pos.val[fp] = nodePos(e.val)
		f := event.Field{Name: e.name, Required: true, Pos: nodePos(e.key)}
		val := resolve(e.val)
		switch {
		case !d.spend(val):
			return
		case val.Kind == yaml.MappingNode:
			var spec fieldSpec
			sv := reflect.ValueOf(&spec).Elem()
			d.defaults(sv, fp)
			d.structure(val, sv, fp)
			tp := keyPath(fp, "type")
			tpos, present := d.pos.val[tp]
			switch {
			case d.pos.bad[tp]:
			case !present:
				d.errorf(val, tp, "is required")
			case strings.HasSuffix(spec.Type, "?"):
				d.errorAt(tpos, tp, "write required: false instead of a trailing '?'")
			default:
				f.Type = d.fieldType(tpos, tp, spec.Type)
			}
			f.Required = spec.Required
		case val.Kind == yaml.ScalarNode && !isNull(val):
			s, ok := d.scalar(val, fp, "a type")
			if !ok {
				break
			}
			if t, opt := strings.CutSuffix(s, "?"); opt {
				s, f.Required = t, false
			}
			f.Type = d.fieldType(nodePos(e.val), fp, s)
		case isNull(val):
			d.errorf(e.val, fp, "needs a type; %s", typeHelp)
		default:
			d.errorf(e.val, fp, "must be a type or {type: T, required: false}, got %s; %s", DescribeNode(val), typeHelp)
		}
		out = append(out, f)
	}
	v.Set(reflect.ValueOf(out))
}

// fieldType parses a type name; 0 when it is unknown.
func (d *decoder) fieldType(p Pos, path, s string) event.FieldType {
	t, ok := event.ParseFieldType(s)
	if !ok {
		var names []string
		for t := event.TypeString; t <= event.TypeTimestamp; t++ {
			names = append(names, t.String())
		}
		d.errorAt(p, path, "unknown type %s%s; %s", quote(s), didYouMean(s, names), typeHelp)
	}
	return t
}
