package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/expr"
)

// Plan is a view compiled once into pure functions over events: filter
// (Match), group key (Key), window assignment (Windows, AddSession) and
// aggregate state (NewState, Update, Merge, Finalize). The speed layer runs
// it on the stream and the batch layer over the lake; since both run the same
// functions and merging is order-independent, both compute the same values
// for a closed window.
//
// A Plan is immutable after Compile and safe for concurrent use; the States
// it creates are not.
type Plan struct {
	view   string
	from   string
	schema event.Schema
	window pipelines.Window

	kind             windowKind
	size, slide, gap int64       // µs
	where            *expr.Where // nil: every event matches
	group            []keyField
	aggs             *aggregate.Set
	columns          []Column
	def              uint64 // the view's definition hash: see identity.go
	aggFields        []int  // schema indexes of the fields the aggregates read
	eventOrder       bool   // an aggregate orders events by time, then id
}

type windowKind uint8

const (
	windowTumbling windowKind = iota + 1
	windowHopping
	windowSession
)

// maxHops bounds the windows one event lands in for a hopping view
// (size/slide), which multiplies the state and the work per event.
const maxHops = 1024

type keyField struct {
	name  string
	field int
	typ   event.FieldType
}

// Column is one output column of a plan: a group-by field or an aggregate.
type Column struct {
	Name string
	Type event.FieldType
}

// PlanError is a view that cannot be compiled. Part names what is wrong
// ("window", "where", "group_by", `aggregate "p95"`) and Pos locates it in the
// pipeline file when known.
type PlanError struct {
	View string
	Part string
	Pos  pipelines.Pos
	Err  error
}

func (e *PlanError) Error() string {
	return fmt.Sprintf("view %q: %s: %v", e.View, e.Part, e.Err)
}

func (e *PlanError) Unwrap() error { return e.Err }

// Compile compiles view v over topic t. It checks everything a plan depends
// on: the window, the where expression (types included), the group-by fields
// and each aggregate's function, field and argument.
func Compile(v *pipelines.View, t *pipelines.Topic) (*Plan, error) {
	p := &Plan{view: v.Name, from: t.Name, schema: t.Schema, window: v.Window}
	fail := func(part string, pos pipelines.Pos, err error) (*Plan, error) {
		return nil, &PlanError{View: v.Name, Part: part, Pos: pos, Err: err}
	}
	if v.From != "" && v.From != t.Name {
		return fail("from", v.Pos, fmt.Errorf("view reads topic %q, compiled against %q", v.From, t.Name))
	}
	if err := p.compileWindow(v.Window); err != nil {
		return fail("window", v.Pos, err)
	}
	if strings.TrimSpace(v.Where) != "" {
		w, err := expr.Compile(v.Where, t.Schema)
		if err != nil {
			return fail("where", v.Pos, err)
		}
		p.where = w
	}
	for _, name := range v.GroupBy {
		i := t.Schema.Index(name)
		if i < 0 {
			return fail("group_by", v.Pos, fmt.Errorf("unknown field %q", name))
		}
		for _, g := range p.group {
			if g.name == name {
				return fail("group_by", v.Pos, fmt.Errorf("field %q listed twice", name))
			}
		}
		p.group = append(p.group, keyField{name: name, field: i, typ: t.Schema[i].Type})
	}
	if len(v.Aggregates) == 0 {
		return fail("aggregates", v.Pos, errors.New("a view needs at least one aggregate"))
	}
	b := aggregate.NewBuilder(v.Name, t.Schema)
	seen := make(map[string]bool, len(v.Aggregates))
	for _, a := range v.Aggregates {
		if seen[a.Name] {
			return fail(fmt.Sprintf("aggregate %q", a.Name), a.Pos, errors.New("name used twice"))
		}
		seen[a.Name] = true
		out, err := b.Add(a.Func, a.Field, a.Arg)
		if err != nil {
			return fail(fmt.Sprintf("aggregate %q", a.Name), a.Pos, err)
		}
		p.columns = append(p.columns, Column{Name: a.Name, Type: out})
		if i := t.Schema.Index(a.Field); i >= 0 {
			p.aggFields = append(p.aggFields, i)
		}
		if f, ok := aggregate.Lookup(a.Func); ok && f.EventOrder {
			p.eventOrder = true
		}
	}
	p.def = definitionHash(v, t)
	aggs, err := b.Build()
	if err != nil {
		return fail("aggregates", v.Pos, err)
	}
	p.aggs = aggs
	return p, nil
}

func (p *Plan) compileWindow(w pipelines.Window) error {
	micros := func(name string, d pipelines.Duration) (int64, error) {
		us := d.D().Microseconds()
		if us <= 0 {
			return 0, fmt.Errorf("%s must be at least 1µs, got %v", name, d.D())
		}
		return us, nil
	}
	var err error
	switch w.Type {
	case "tumbling":
		p.kind = windowTumbling
		p.size, err = micros("size", w.Size)
	case "hopping":
		p.kind = windowHopping
		if p.size, err = micros("size", w.Size); err != nil {
			return err
		}
		if p.slide, err = micros("slide", w.Slide); err != nil {
			return err
		}
		switch {
		case p.slide > p.size:
			return fmt.Errorf("slide %v is longer than size %v: events between windows would be dropped", w.Slide.D(), w.Size.D())
		case p.size/p.slide > maxHops:
			return fmt.Errorf("size/slide is %d: each event would land in more than %d windows", p.size/p.slide, maxHops)
		}
	case "session":
		p.kind = windowSession
		p.gap, err = micros("gap", w.Gap)
	default:
		return fmt.Errorf("unknown window type %q (want tumbling, hopping or session)", w.Type)
	}
	return err
}

// NewMatcher returns a Matcher of the view's where expression, for a
// goroutine that matches many events.
func (p *Plan) NewMatcher() *expr.Matcher { return p.where.NewMatcher() }

// Match reports whether the event passes the view's where expression (true
// when there is none). An error means the expression failed on this event,
// e.g. by comparing a missing optional field; the event should be counted
// as rejected, not aggregated. Match is safe for concurrent use.
func (p *Plan) Match(e *event.Event) (bool, error) {
	if p.where == nil {
		return true, nil
	}
	ok, err := p.where.Match(e)
	if err != nil {
		return false, fmt.Errorf("view %q: where: %w", p.view, err)
	}
	return ok, nil
}

// Reads reports which fields of the topic's schema (by index) the plan
// reads — the group-by fields, the aggregates' fields and the fields the
// where expression reads, as its syntax tree names them — and whether it
// reads event ids (first and last break ties between events of one time by
// id). A reader of stored events needs to load only these.
func (p *Plan) Reads() (fields []bool, ids bool) {
	fields = make([]bool, len(p.schema))
	for _, g := range p.group {
		fields[g.field] = true
	}
	for _, i := range p.aggFields {
		fields[i] = true
	}
	if p.where != nil {
		for _, name := range p.where.Fields() {
			if i := p.schema.Index(name); i >= 0 {
				fields[i] = true
			}
		}
	}
	return fields, p.eventOrder
}

// View returns the name of the compiled view.
func (p *Plan) View() string { return p.view }

// Window returns the view's window definition.
func (p *Plan) Window() pipelines.Window { return p.window }

// Session reports whether the view has session windows: those are assigned
// per key with AddSession, not with Windows.
func (p *Plan) Session() bool { return p.kind == windowSession }

// GroupBy returns the group-by columns in key order, typed as in the schema.
func (p *Plan) GroupBy() []Column {
	cs := make([]Column, len(p.group))
	for i, g := range p.group {
		cs[i] = Column{Name: g.name, Type: g.typ}
	}
	return cs
}

// Columns returns the aggregate columns in the view's order with the types
// Finalize gives them: count and count_distinct long; sum long for long and
// int fields, double for double; avg and quantile double; min, max, first
// and last the field's type.
func (p *Plan) Columns() []Column {
	return append([]Column(nil), p.columns...)
}

// Key appends the event's group key to buf[:0] and returns it. The key is a
// compact binary encoding of the group-by values, stable across processes
// and versions of this format, so string(key) serves as a map key and keys
// can be stored in checkpoints. Per field: a byte 0 for null or 1, then
// string: uvarint length and bytes; long, int, timestamp: zig-zag varint;
// bool: one byte; double: 8 bytes little-endian IEEE bits, with -0 folded
// into 0 and all NaNs into one.
func (p *Plan) Key(e *event.Event, buf []byte) []byte {
	buf = buf[:0]
	for _, g := range p.group {
		var v *event.Value
		if g.field < len(e.Values) {
			v = &e.Values[g.field]
		}
		buf = appendKeyValue(buf, g.typ, v)
	}
	return buf
}

// appendKeyValue appends one group-by value (nil or not Valid: null) in
// Key's encoding.
func appendKeyValue(buf []byte, typ event.FieldType, v *event.Value) []byte {
	if v == nil || !v.Valid {
		return append(buf, 0)
	}
	buf = append(buf, 1)
	switch typ {
	case event.TypeString:
		buf = binfmt.AppendString(buf, v.S)
	case event.TypeDouble:
		buf = binfmt.AppendFloat64(buf, event.CanonicalFloat(v.F))
	case event.TypeBool:
		buf = append(buf, byte(v.I&1))
	default:
		buf = binfmt.AppendVarint(buf, v.I)
	}
	return buf
}

// ErrBadKey is returned by DecodeKey for bytes that Key did not produce for
// this plan.
var ErrBadKey = errors.New("malformed group key")

// DecodeKey returns the group-by values encoded in a key made by Key, in
// GroupBy order.
func (p *Plan) DecodeKey(key []byte) ([]event.Value, error) {
	vs, err := p.AppendGroup(make([]event.Value, 0, len(p.group)), string(key))
	if err != nil {
		return nil, err
	}
	return vs, nil
}

// AppendGroup appends the group-by values encoded in key (made by Key) to
// dst, in GroupBy order. Their strings are substrings of key, not copies:
// the speed layer builds a row per changed window from keys it holds as
// strings, and a copy per row and field would be most of that row's cost.
// On an error dst is returned unchanged.
func (p *Plan) AppendGroup(dst []event.Value, key string) ([]event.Value, error) {
	n := len(dst)
	dst = slices.Grow(dst, len(p.group))[:n+len(p.group)]
	vs := dst[n:]
	clear(vs)
	r := binfmt.NewReader(unsafe.Slice(unsafe.StringData(key), len(key)), nil)
	for i, g := range p.group {
		switch r.Byte() {
		case 0:
			continue
		case 1:
		default:
			if r.Failed() {
				return dst[:n], fmt.Errorf("%w: %d bytes", ErrBadKey, len(key))
			}
			return dst[:n], fmt.Errorf("%w: field %q", ErrBadKey, g.name)
		}
		v := &vs[i]
		v.Valid = true
		switch g.typ {
		case event.TypeString:
			// The reader's bytes are key's, which cannot change.
			v.S = r.LenStringView()
		case event.TypeDouble:
			v.F = r.Float64()
		case event.TypeBool:
			v.I = int64(r.Byte() & 1)
		default:
			v.I = r.Varint()
		}
	}
	if r.Failed() || r.Remaining() != 0 {
		return dst[:n], fmt.Errorf("%w: %d bytes", ErrBadKey, len(key))
	}
	return dst, nil
}
