package pipetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// FormatError is a test file that cannot be read as one: it names the file
// and the line and column of the problem.
type FormatError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *FormatError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// defaultStart is the clock at the start of a case when the file gives
// none.
var defaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testFile is a parsed test file.
type testFile struct {
	path     string
	pipeline *pipelines.Pipeline
	start    time.Time
	idle     time.Duration
	cases    []*testCase
}

type testCase struct {
	name  string
	line  int
	steps []*step
}

type stepKind uint8

const (
	stepEvents stepKind = iota + 1
	stepAdvance
	stepWatermark
	stepExpect
)

type step struct {
	line int
	kind stepKind

	topic     *pipelines.Topic
	partition int // -1: by key
	events    []eventSpec

	advance   time.Duration
	watermark time.Time
	expect    *expectation
}

// eventSpec is an event as written; its time is set when it is appended,
// from the clock for topics without a time field.
type eventSpec struct {
	id      string
	values  []event.Value
	hasTime bool
	time    int64
}

type expectation struct {
	view      *pipelines.View
	schema    event.Schema // the view's row schema
	late      *uint64
	checkRows bool
	rows      []expectRow
}

type expectRow struct {
	line int
	cols []expectCol
}

// expectCol is one checked column of an expected row; col indexes the
// view's row schema, or is -1 for final.
type expectCol struct {
	name   string
	col    int
	line   int
	null   bool
	value  event.Value
	within float64 // relative tolerance for doubles
	approx bool    // within was asked for, and numbers compare as doubles
	final  bool
}

// parser reads one test file.
type parser struct {
	file string
}

func (ps *parser) errAt(n *yaml.Node, format string, args ...any) error {
	e := &FormatError{File: ps.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// load reads and checks a test file and the pipeline it names.
func load(path string, sinks pipelines.SinkTypes) (*testFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipetest: %w", err)
	}
	ps := &parser{file: path}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, &FormatError{File: path, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, ps.errAt(&doc, "a test file is a mapping with pipeline and cases")
	}
	tf := &testFile{path: path, start: defaultStart, idle: 0}
	var casesNode *yaml.Node
	err = ps.fields(doc.Content[0], map[string]func(k, v *yaml.Node) error{
		"pipeline": func(_, v *yaml.Node) error {
			p, err := loadPipeline(path, v.Value, sinks)
			if err != nil {
				return ps.errAt(v, "pipeline %q: %v", v.Value, err)
			}
			tf.pipeline = p
			return nil
		},
		"start": func(_, v *yaml.Node) error {
			t, err := parseTime(v)
			if err != nil {
				return ps.errAt(v, "start: %v", err)
			}
			tf.start = time.UnixMicro(t).UTC()
			return nil
		},
		"idle": func(_, v *yaml.Node) error {
			d, err := pipelines.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				return ps.errAt(v, "idle: %q is not a positive duration", v.Value)
			}
			tf.idle = d.D()
			return nil
		},
		"cases": func(_, v *yaml.Node) error { casesNode = v; return nil },
	}, "pipeline", "cases")
	if err != nil {
		return nil, err
	}
	if casesNode.Kind != yaml.SequenceNode || len(casesNode.Content) == 0 {
		return nil, ps.errAt(casesNode, "cases: a list of at least one case")
	}
	names := map[string]bool{}
	for _, cn := range casesNode.Content {
		tc, err := ps.testCase(tf, cn)
		if err != nil {
			return nil, err
		}
		if names[tc.name] {
			return nil, ps.errAt(cn, "case %q: name used twice", tc.name)
		}
		names[tc.name] = true
		tf.cases = append(tf.cases, tc)
	}
	return tf, nil
}

// loadPipeline loads the pipeline file named relative to the test file,
// with the process environment for ${VAR}.
func loadPipeline(testPath, name string, sinks pipelines.SinkTypes) (*pipelines.Pipeline, error) {
	if name == "" {
		return nil, errors.New("empty path")
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(testPath), name)
	}
	p, err := pipelines.Load(name, os.LookupEnv, sinks)
	if err != nil {
		var errs pipelines.Errors
		if errors.As(err, &errs) && len(errs) > 0 {
			return nil, fmt.Errorf("%d problems, the first: %v", len(errs), errs[0])
		}
		return nil, err
	}
	return p, nil
}

// fields walks a mapping: every key must be known, required ones present.
func (ps *parser) fields(m *yaml.Node, known map[string]func(k, v *yaml.Node) error, required ...string) error {
	if m.Kind != yaml.MappingNode {
		return ps.errAt(m, "expected a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		f, ok := known[k.Value]
		if !ok {
			keys := make([]string, 0, len(known))
			for name := range known {
				keys = append(keys, name)
			}
			slices.Sort(keys)
			return ps.errAt(k, "unknown key %q (known: %s)", k.Value, strings.Join(keys, ", "))
		}
		if seen[k.Value] {
			return ps.errAt(k, "key %q given twice", k.Value)
		}
		seen[k.Value] = true
		if err := f(k, v); err != nil {
			return err
		}
	}
	for _, r := range required {
		if !seen[r] {
			return ps.errAt(m, "missing %q", r)
		}
	}
	return nil
}

func (ps *parser) testCase(tf *testFile, n *yaml.Node) (*testCase, error) {
	tc := &testCase{line: n.Line}
	var stepsNode *yaml.Node
	err := ps.fields(n, map[string]func(k, v *yaml.Node) error{
		"name":  func(_, v *yaml.Node) error { tc.name = v.Value; return nil },
		"steps": func(_, v *yaml.Node) error { stepsNode = v; return nil },
	}, "name", "steps")
	if err != nil {
		return nil, err
	}
	if stepsNode.Kind != yaml.SequenceNode || len(stepsNode.Content) == 0 {
		return nil, ps.errAt(stepsNode, "case %q: steps: a list of at least one step", tc.name)
	}
	for i, sn := range stepsNode.Content {
		st, err := ps.step(tf, tc, i+1, sn)
		if err != nil {
			return nil, err
		}
		tc.steps = append(tc.steps, st)
	}
	return tc, nil
}

func (ps *parser) step(tf *testFile, tc *testCase, index int, n *yaml.Node) (*step, error) {
	st := &step{line: n.Line, partition: -1}
	var eventsNode, topicNode, partNode *yaml.Node
	kinds := 0
	err := ps.fields(n, map[string]func(k, v *yaml.Node) error{
		"events":    func(_, v *yaml.Node) error { eventsNode, st.kind = v, stepEvents; kinds++; return nil },
		"topic":     func(_, v *yaml.Node) error { topicNode = v; return nil },
		"partition": func(_, v *yaml.Node) error { partNode = v; return nil },
		"advance": func(_, v *yaml.Node) error {
			st.kind = stepAdvance
			kinds++
			d, err := pipelines.ParseDuration(v.Value)
			if err != nil || d < 0 {
				return ps.errAt(v, "advance: %q is not a duration", v.Value)
			}
			st.advance = d.D()
			return nil
		},
		"watermark": func(_, v *yaml.Node) error {
			st.kind = stepWatermark
			kinds++
			t, err := parseTime(v)
			if err != nil {
				return ps.errAt(v, "watermark: %v", err)
			}
			st.watermark = time.UnixMicro(t).UTC()
			return nil
		},
		"expect": func(_, v *yaml.Node) error {
			st.kind = stepExpect
			kinds++
			ex, err := ps.expectation(tf, v)
			st.expect = ex
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if kinds != 1 {
		return nil, ps.errAt(n, "case %q step %d: a step has exactly one of events, advance, watermark and expect", tc.name, index)
	}
	if st.kind != stepEvents && (topicNode != nil || partNode != nil) {
		return nil, ps.errAt(n, "case %q step %d: topic and partition go with events", tc.name, index)
	}
	if st.kind == stepEvents {
		if err := ps.eventsStep(tf, tc, index, st, eventsNode, topicNode, partNode); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (ps *parser) eventsStep(tf *testFile, tc *testCase, index int, st *step, events, topic, part *yaml.Node) error {
	p := tf.pipeline
	switch {
	case topic != nil:
		st.topic = p.TopicByName(topic.Value)
		if st.topic == nil {
			return ps.errAt(topic, "unknown topic %q", topic.Value)
		}
	case len(p.Topics) == 1:
		st.topic = &p.Topics[0]
	default:
		return ps.errAt(events, "the pipeline has %d topics: name one with topic", len(p.Topics))
	}
	if part != nil {
		n, err := strconv.Atoi(part.Value)
		if err != nil || n < 0 || n >= max(st.topic.Partitions, 1) {
			return ps.errAt(part, "partition: %q is not a partition of topic %q (it has %d)", part.Value, st.topic.Name, max(st.topic.Partitions, 1))
		}
		st.partition = n
	}
	if events.Kind != yaml.SequenceNode || len(events.Content) == 0 {
		return ps.errAt(events, "events: a list of at least one event")
	}
	for i, en := range events.Content {
		es, err := ps.event(st.topic, p.SiteName(), en)
		if err != nil {
			return err
		}
		if es.id == "" {
			es.id = fmt.Sprintf("%s/%d/%d", tc.name, index, i+1)
		}
		st.events = append(st.events, es)
	}
	return nil
}

// event reads one event of topic t; in a topic with sources, one that does
// not say its _site was accepted at site.
func (ps *parser) event(t *pipelines.Topic, site string, n *yaml.Node) (eventSpec, error) {
	es := eventSpec{values: make([]event.Value, len(t.Schema))}
	if n.Kind != yaml.MappingNode {
		return es, ps.errAt(n, "an event is a mapping of the fields of topic %q", t.Name)
	}
	set := make([]bool, len(t.Schema))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == event.ColID {
			es.id = v.Value
			continue
		}
		fi := t.Schema.Index(k.Value)
		if fi < 0 {
			return es, ps.errAt(k, "topic %q has no field %q (fields: %s)", t.Name, k.Value, fieldNames(t.Schema))
		}
		if set[fi] {
			return es, ps.errAt(k, "field %q given twice", k.Value)
		}
		set[fi] = true
		if isNull(v) {
			continue
		}
		val, err := parseValue(t.Schema[fi].Type, v)
		if err != nil {
			return es, ps.errAt(v, "field %q: %v", k.Value, err)
		}
		es.values[fi] = val
	}
	for i, f := range t.Schema {
		if !set[i] && pipelines.IsSiteField(f) {
			es.values[i] = event.Value{S: site, Valid: true}
		}
		if f.Required && !es.values[i].Valid {
			return es, ps.errAt(n, "field %q is required by topic %q", f.Name, t.Name)
		}
	}
	if t.Time != "" {
		if fi := t.Schema.Index(t.Time); fi >= 0 && es.values[fi].Valid {
			es.hasTime, es.time = true, es.values[fi].I
		} else {
			return es, ps.errAt(n, "the event has no %s (the topic's time field)", t.Time)
		}
	}
	return es, nil
}

func (ps *parser) expectation(tf *testFile, n *yaml.Node) (*expectation, error) {
	ex := &expectation{}
	var rowsNode, viewNode *yaml.Node
	err := ps.fields(n, map[string]func(k, v *yaml.Node) error{
		"view": func(_, v *yaml.Node) error { viewNode = v; return nil },
		"rows": func(_, v *yaml.Node) error { rowsNode = v; return nil },
		"late": func(_, v *yaml.Node) error {
			l, err := strconv.ParseUint(v.Value, 10, 64)
			if err != nil {
				return ps.errAt(v, "late: %q is not a count", v.Value)
			}
			ex.late = &l
			return nil
		},
	}, "view")
	if err != nil {
		return nil, err
	}
	ex.view = tf.pipeline.ViewByName(viewNode.Value)
	if ex.view == nil {
		return nil, ps.errAt(viewNode, "unknown view %q", viewNode.Value)
	}
	ex.schema = pipelines.ViewSchema(ex.view, tf.pipeline.TopicByName(ex.view.From))
	if rowsNode == nil {
		if ex.late == nil {
			return nil, ps.errAt(n, "expect: give rows, late or both")
		}
		return ex, nil
	}
	ex.checkRows = true
	if isNull(rowsNode) {
		return ex, nil
	}
	if rowsNode.Kind != yaml.SequenceNode {
		return nil, ps.errAt(rowsNode, "rows: a list of rows ([] for none)")
	}
	for _, rn := range rowsNode.Content {
		r, err := ps.expectRow(ex, rn)
		if err != nil {
			return nil, err
		}
		ex.rows = append(ex.rows, r)
	}
	return ex, nil
}

func (ps *parser) expectRow(ex *expectation, n *yaml.Node) (expectRow, error) {
	r := expectRow{line: n.Line}
	if n.Kind != yaml.MappingNode {
		return r, ps.errAt(n, "a row is a mapping of column to value")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		c := expectCol{name: k.Value, col: -1, line: k.Line}
		if k.Value == "final" {
			b, err := strconv.ParseBool(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				return r, ps.errAt(v, "final: %q is not true or false", v.Value)
			}
			c.final = b
			r.cols = append(r.cols, c)
			continue
		}
		c.col = ex.schema.Index(k.Value)
		if c.col < 0 {
			return r, ps.errAt(k, "view %q has no column %q (columns: %s, final)", ex.view.Name, k.Value, fieldNames(ex.schema))
		}
		typ := ex.schema[c.col].Type
		switch {
		case isNull(v):
			c.null = true
		case v.Kind == yaml.MappingNode:
			if err := ps.approx(&c, typ, v); err != nil {
				return r, err
			}
		default:
			val, err := parseValue(typ, v)
			if err != nil {
				return r, ps.errAt(v, "column %q: %v", k.Value, err)
			}
			c.value = val
			if typ == event.TypeDouble {
				c.within = 1e-9
			}
		}
		r.cols = append(r.cols, c)
	}
	return r, nil
}

// approx reads {approx: X, within: R}: X within R, a fraction or a
// percentage, relative to X (default 1%).
func (ps *parser) approx(c *expectCol, typ event.FieldType, n *yaml.Node) error {
	if typ != event.TypeDouble && typ != event.TypeLong && typ != event.TypeInt {
		return ps.errAt(n, "column %q: approx is for numbers; the column is %s", c.name, typ)
	}
	c.within, c.approx = 0.01, true
	var target *yaml.Node
	err := ps.fields(n, map[string]func(k, v *yaml.Node) error{
		"approx": func(_, v *yaml.Node) error { target = v; return nil },
		"within": func(_, v *yaml.Node) error {
			s, scale := v.Value, 1.0
			if strings.HasSuffix(s, "%") {
				s, scale = strings.TrimSuffix(s, "%"), 0.01
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f < 0 {
				return ps.errAt(v, "within: %q is not a tolerance such as 0.01 or 1%%", v.Value)
			}
			c.within = f * scale
			return nil
		},
	}, "approx")
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(target.Value, 64)
	if err != nil {
		return ps.errAt(target, "approx: %q is not a number", target.Value)
	}
	// Integers compare as doubles under a tolerance.
	c.value = event.Value{F: f, Valid: true}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// parseValue reads a scalar as a value of type t (event.ParseValue).
func parseValue(t event.FieldType, n *yaml.Node) (event.Value, error) {
	if n.Kind != yaml.ScalarNode {
		return event.Value{}, fmt.Errorf("want a %s, got %s", t, pipelines.DescribeNode(n))
	}
	return event.ParseValue(t, n.Value)
}

// parseTime reads RFC 3339 or epoch milliseconds as UTC microseconds.
func parseTime(n *yaml.Node) (int64, error) {
	return event.ParseTime(n.Value)
}

func fieldNames(s event.Schema) string {
	names := make([]string, len(s))
	for i, f := range s {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
