package pipelines

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
)

// aggregates decodes a view's aggregates: an ordered mapping from output
// column name to a call such as count() or quantile(cpu, 0.95).
func (d *decoder) aggregates(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of output name to aggregate, e.g. {events: count()}, got %s", DescribeNode(n))
		return
	}
	var out Aggregates
	for _, e := range d.entries(n, path, 0) {
		fp := keyPath(path, e.name)
		d.pos.key[fp] = nodePos(e.key)
		d.pos.val[fp] = nodePos(e.val)
		val := resolve(e.val)
		if !d.spend(val) {
			return
		}
		a := Aggregate{Name: e.name, Pos: nodePos(e.val)}
		const want = "a call like count(), sum(bytes) or quantile(cpu, 0.95)"
		if isNull(val) {
			d.errorf(e.val, fp, "must be %s, got nothing", want)
		} else if s, ok := d.scalar(val, fp, want); ok {
			var msg string
			if a.Func, a.Field, a.Arg, msg = parseAggregate(s); msg != "" {
				if n.Style&yaml.FlowStyle != 0 && strings.Contains(s, "(") && !strings.Contains(s, ")") {
					// YAML split "{p: quantile(cpu, 0.5)}" at the comma.
					msg += " (inside { }, quote a call that has a comma)"
				}
				d.errorf(e.val, fp, "%s", msg)
			}
		}
		out = append(out, a)
	}
	v.Set(reflect.ValueOf(out))
}

// parseAggregate parses a call such as "sum(bytes)" against the aggregate
// registry. It checks the syntax, the function and its arguments' number and
// form; whether the field exists and has a fitting type, and whether a
// number is in range, is for validation, which knows the topic. msg is empty
// on success.
func parseAggregate(s string) (fn, field string, num float64, msg string) {
	const help = "want a call like count(), sum(bytes) or quantile(cpu, 0.95)"
	call := strings.TrimSpace(s)
	open := strings.IndexByte(call, '(')
	if open < 0 || !strings.HasSuffix(call, ")") {
		return "", "", 0, fmt.Sprintf("invalid aggregate %s: %s", quote(s), help)
	}
	fn = strings.TrimSpace(call[:open])
	var args []string
	if inner := strings.TrimSpace(call[open+1 : len(call)-1]); inner != "" {
		for a := range strings.SplitSeq(inner, ",") {
			args = append(args, strings.TrimSpace(a))
		}
	}
	f, ok := aggregate.Lookup(fn)
	if !ok {
		names := aggregate.Names()
		return "", "", 0, fmt.Sprintf("unknown aggregate function %s%s; want %s", quote(fn), didYouMean(fn, names), oneOf(names))
	}
	if len(args) != len(f.Args) {
		msg := fmt.Sprintf("%s takes %s, e.g. %s; got %s", fn, f.Takes, f.Example, arguments(len(args)))
		if len(f.Args) == 0 {
			msg = fn + "() takes no arguments"
		}
		if f.Hint != "" {
			msg += "; " + f.Hint
		}
		return "", "", 0, msg
	}
	// Numbers first, then the field, as messages always did.
	for i, a := range f.Args {
		if a.Kind != aggregate.ArgNumber {
			continue
		}
		var err error
		if num, err = strconv.ParseFloat(args[i], 64); err != nil {
			return "", "", 0, fmt.Sprintf("%s's %s must be a number, got %s", fn, a.Name, quote(args[i]))
		}
	}
	for i, a := range f.Args {
		if a.Kind != aggregate.ArgField {
			continue
		}
		if !fieldNameRe.MatchString(args[i]) {
			return "", "", 0, fmt.Sprintf("invalid field name %s in %s", quote(args[i]), quote(s))
		}
		field = args[i]
	}
	return fn, field, num, ""
}

func arguments(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return strconv.Itoa(n) + " arguments"
}
