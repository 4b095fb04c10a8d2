package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/sqlquery"
)

// sqlCmd runs a read-only query and prints its answer: an aligned table,
// or the server's JSON, NDJSON or CSV.
func sqlCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("sql", `"SELECT …" (or - to read it from standard input)`, std)
	conn := clientFlags(fs, env)
	format := fs.String("format", "table", "output: table, json, ndjson or csv")
	maxRows := fs.Int("max-rows", 0, "fail past this many rows (at most sql.max_rows; 0: the server's)")
	timeout := fs.String("timeout", "", "cancel the query after this long, e.g. 5s (at most sql.timeout)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	query := pos[0]
	if query == "-" {
		b, err := io.ReadAll(std.in)
		if err != nil {
			return fmt.Errorf("reading the query: %w", err)
		}
		query = string(b)
	}
	req := api.SQLRequest{SQL: query, MaxRows: *maxRows, Timeout: *timeout}
	c := conn()
	switch *format {
	case "json", "ndjson", "csv":
		data, err := c.SQLAs(ctx, req, *format)
		if err != nil {
			return err
		}
		_, err = std.out.Write(data)
		return err
	case "table":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--format %q: want table, json, ndjson or csv", *format)}
	}
	res, err := c.SQL(ctx, req)
	if err != nil {
		return err
	}
	writeTable(std.out, res)
	return nil
}

// writeTable prints an answer as an aligned table: a header, a rule, the
// rows (NULL for nulls, numbers right-aligned) and the row count.
func writeTable(w io.Writer, res api.SQLResult) {
	n := len(res.Columns)
	cells := make([][]string, len(res.Rows))
	width := make([]int, n)
	right := make([]bool, n)
	for i, c := range res.Columns {
		width[i] = utf8.RuneCountInString(c.Name)
		right[i] = numericType(c.Type)
	}
	for r, row := range res.Rows {
		cells[r] = make([]string, n)
		for i := 0; i < n && i < len(row); i++ {
			s := "NULL"
			if row[i] != nil {
				s = strings.ReplaceAll(sqlquery.Text(row[i]), "\n", `\n`)
			}
			cells[r][i] = s
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	line := func(vals []string) {
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(v))
			if right[i] {
				b.WriteString(pad + v)
			} else if i < n-1 {
				b.WriteString(v + pad)
			} else {
				b.WriteString(v)
			}
		}
		fmt.Fprintln(w, b.String())
	}
	head := make([]string, n)
	rule := make([]string, n)
	for i, c := range res.Columns {
		head[i] = c.Name
		rule[i] = strings.Repeat("-", width[i])
	}
	line(head)
	line(rule)
	for _, row := range cells {
		line(row)
	}
	s := "s"
	if len(res.Rows) == 1 {
		s = ""
	}
	fmt.Fprintf(w, "(%d row%s)\n", len(res.Rows), s)
}

func numericType(t string) bool {
	switch {
	case strings.HasPrefix(t, "DECIMAL"):
		return true
	}
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE":
		return true
	}
	return false
}
