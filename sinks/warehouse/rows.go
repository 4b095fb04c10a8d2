// Package warehouse holds the SQL warehouse targets of the sink runner:
// PostgreSQL (pgx; COPY into a staging table, then INSERT … ON CONFLICT) and
// DuckDB, the embedded default (a file under data_dir; the Appender into a
// staging table, then the same merge). A topic or a view lands in a table
// named after it, with one column per field and its primary key as
// sinks.Table says; Prepare creates the table and adds new nullable columns.
//
// Targets here are thin: batching, retries, dead letters and metrics are the
// runner's (package sinks). What a target owns is the mapping of types, the
// idempotent upsert, and telling the runner which rows the database rejects
// for good (sinks.RowErrors) from failures worth retrying (any other error).
package warehouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// errRejected marks a value the target refuses before sending it, because
// the database would reject it (or, for DuckDB, silently store NULL).
var errRejected = errors.New("rejected")

// quote quotes an SQL identifier (both PostgreSQL and DuckDB use "…").
// QuoteIdent quotes a table or column name for SQL (both engines).
func QuoteIdent(name string) string { return quote(name) }

func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteList quotes and joins names with ", ".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

// columnNames lists a table's column names in order.
func columnNames(t sinks.Table) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// createTableSQL is CREATE TABLE IF NOT EXISTS for t with the given type
// names, its key columns NOT NULL through the primary key.
func createTableSQL(t sinks.Table, sqlType func(event.FieldType) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", quote(t.Name))
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", quote(c.Name), sqlType(c.Type))
	}
	fmt.Fprintf(&b, ", PRIMARY KEY (%s))", quoteList(t.Key))
	return b.String()
}

// mergeSQL moves the staging table's rows into t: an upsert on t's key that
// overwrites every other column, so a redelivered row changes nothing.
func mergeSQL(t sinks.Table, stage string) string {
	cols := quoteList(columnNames(t))
	var set []string
	for _, c := range t.Columns {
		if !slices.Contains(t.Key, c.Name) {
			set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", quote(c.Name), quote(c.Name)))
		}
	}
	action := "DO NOTHING"
	if len(set) > 0 {
		action = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) %s",
		quote(t.Name), cols, cols, stage, quoteList(t.Key), action)
}

// deleteSQL removes from t the rows whose keys the staging table stage
// holds (rows to delete, sinks.Row.Delete).
func deleteSQL(t sinks.Table, stage string) string {
	on := make([]string, len(t.Key))
	for i, k := range t.Key {
		on[i] = fmt.Sprintf("%s.%s = %s.%s", quote(t.Name), quote(k), stage, quote(k))
	}
	return fmt.Sprintf("DELETE FROM %s USING %s WHERE %s", quote(t.Name), stage, strings.Join(on, " AND "))
}

// split parts the rows at idx into upserts and deletes.
func split(rows []sinks.Row, idx []int) (upserts, deletes []int) {
	for _, i := range idx {
		if rows[i].Delete {
			deletes = append(deletes, i)
		} else {
			upserts = append(upserts, i)
		}
	}
	return upserts, deletes
}

// engineLimits are what a database cannot store, checked before sending.
type engineLimits struct {
	name string
	// nulByte: text cannot hold "\x00" (PostgreSQL).
	noNulByte bool
	// minMicros, maxMicros bound timestamps, UTC µs.
	minMicros, maxMicros int64
}

// validate returns why row cannot be stored in t, or nil. It catches what
// the database would reject anyway (cheaper than finding the row by
// bisection) and what DuckDB would store wrongly without an error: invalid
// UTF-8 (stored as NULL) and an int out of range (wrapped).
func (l engineLimits) validate(t sinks.Table, keyIdx []int, row *sinks.Row) error {
	for _, k := range keyIdx {
		if k >= len(row.Values) || !row.Values[k].Valid {
			return fmt.Errorf("%w: key column %q is null", errRejected, t.Columns[k].Name)
		}
	}
	for i, c := range t.Columns {
		if i >= len(row.Values) || !row.Values[i].Valid {
			continue
		}
		v := row.Values[i]
		switch c.Type {
		case event.TypeString:
			if !utf8.ValidString(v.S) {
				return fmt.Errorf("%w: column %q: %s text must be valid UTF-8", errRejected, c.Name, l.name)
			}
			if l.noNulByte && strings.IndexByte(v.S, 0) >= 0 {
				return fmt.Errorf("%w: column %q: %s text cannot hold a NUL byte (\\x00)", errRejected, c.Name, l.name)
			}
		case event.TypeInt:
			if v.I < math.MinInt32 || v.I > math.MaxInt32 {
				return fmt.Errorf("%w: column %q: %d is out of range for integer", errRejected, c.Name, v.I)
			}
		case event.TypeTimestamp:
			if v.I < l.minMicros || v.I > l.maxMicros {
				return fmt.Errorf("%w: column %q: timestamp %d µs is out of %s's range", errRejected, c.Name, v.I, l.name)
			}
		}
	}
	return nil
}

// keyIndexes returns the positions of t's key columns.
func keyIndexes(t sinks.Table) ([]int, error) {
	idx := make([]int, len(t.Key))
	for i, k := range t.Key {
		idx[i] = t.Columns.Index(k)
		if idx[i] < 0 {
			return nil, fmt.Errorf("table %s: key column %q is not a column: %w", t.Name, k, sinks.ErrPermanent)
		}
	}
	return idx, nil
}

// plan picks the rows of a batch to write: the last row of each key,
// upsert or delete (an upsert cannot touch one row twice in one statement,
// and the last is the one that must win) that passes validate; the others
// that fail validate are returned as rejected.
func plan(t sinks.Table, rows []sinks.Row, limits engineLimits) (write []int, rejected sinks.RowErrors, err error) {
	keyIdx, err := keyIndexes(t)
	if err != nil {
		return nil, nil, err
	}
	last := make(map[string]int, len(rows))
	var kb []byte
	for i := range rows {
		kb = sinks.AppendKey(kb[:0], rows[i].Values, keyIdx)
		last[string(kb)] = i
	}
	write = make([]int, 0, len(last))
	for i := range rows {
		kb = sinks.AppendKey(kb[:0], rows[i].Values, keyIdx)
		if last[string(kb)] != i {
			continue // superseded by a later row of the batch
		}
		if err := limits.validate(t, keyIdx, &rows[i]); err != nil {
			rejected = append(rejected, sinks.RowError{Index: i, Err: err})
			continue
		}
		write = append(write, i)
	}
	return write, rejected, nil
}

// isolate writes the rows at idx with write; when that fails with an error
// isData says the data caused, it halves the rows and tries each half, down
// to single rows, which it returns as rejected. The good rows land in
// O(bad·log n) writes. Any other error stops it and is returned: the runner
// retries the batch, and rows already written are upserted again, which is
// harmless.
func isolate(ctx context.Context, idx []int, write func([]int) error, isData func(error) bool) (sinks.RowErrors, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	err := write(idx)
	if err == nil {
		return nil, nil
	}
	if !isData(err) || ctx.Err() != nil {
		return nil, err
	}
	if len(idx) == 1 {
		return sinks.RowErrors{{Index: idx[0], Err: err}}, nil
	}
	mid := len(idx) / 2
	a, err := isolate(ctx, idx[:mid], write, isData)
	if err != nil {
		return nil, err
	}
	b, err := isolate(ctx, idx[mid:], write, isData)
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

// result combines pre-rejected rows and those found by isolate.
func result(rejected, found sinks.RowErrors) error {
	all := append(rejected, found...)
	if len(all) == 0 {
		return nil
	}
	slices.SortFunc(all, func(a, b sinks.RowError) int { return a.Index - b.Index })
	return all
}
