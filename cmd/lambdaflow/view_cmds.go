package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/lambdaflow/lambdaflow/client"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// queryCmd prints a view's rows as a table, or the API's JSON.
func queryCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("query", "VIEW [--where k=v] [--from T --to T]", std)
	conn := clientFlags(fs, env)
	var where multiFlag
	fs.Var(&where, "where", "group-by field filter k=v (repeatable)")
	from := fs.String("from", "", "first window start, RFC 3339")
	to := fs.String("to", "", "window starts before this time, RFC 3339")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, w := range where {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return fmt.Errorf("--where %q: want field=value", w)
		}
		q.Set(k, v)
	}
	fromT, toT, err := timeFlags(*from, *to)
	if err != nil {
		return err
	}
	c := conn()
	if *asJSON {
		for k, v := range client.TimeParams(fromT, toT) {
			q[k] = v
		}
		return printRaw(ctx, c, std.out, "/v1/views/"+url.PathEscape(pos[0]), q)
	}
	ans, err := c.Query(ctx, pos[0], q, fromT, toT)
	if err != nil {
		return err
	}
	horizon := "none (no batch run yet)"
	if ans.Horizon != nil {
		horizon = *ans.Horizon
	}
	fmt.Fprintf(std.out, "view %s, batch horizon %s, %d rows\n", ans.View, horizon, len(ans.Rows))
	tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	var cols []string
	for i, r := range ans.Rows {
		keys, vals, err := orderedObject(r)
		if err != nil {
			return err
		}
		if i == 0 {
			cols = keys
			fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

// orderedObject returns a JSON object's keys and values in document order.
func orderedObject(raw []byte) ([]string, []string, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	var keys, vals []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, fmt.Sprint(k))
		if v == nil {
			vals = append(vals, "null")
		} else {
			vals = append(vals, fmt.Sprint(v))
		}
	}
	return keys, vals, nil
}
