package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/gocql/gocql"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Limits of a batch that spans partitions. Cassandra warns about an
// unlogged batch over more partitions than
// unlogged_batch_across_partitions_warn_threshold (10) or larger than
// batch_size_warn_threshold (5 KiB), and refuses one over
// batch_size_fail_threshold (50 KiB); a single-partition batch is exempt.
const (
	maxBatchPartitions = 10
	maxBatchBytes      = 4 << 10
)

// Write upserts rows into t's table with prepared INSERTs (an INSERT is an
// upsert in Cassandra, so a redelivered row overwrites itself), in unlogged
// batches that run concurrently, at most inFlight at a time, each routed to
// a replica of its partitions by the token-aware policy.
//
// Rows of one partition key go in one batch (up to batchRows), which
// Cassandra applies as one mutation. Partitions with few rows — every row of
// a topic, keyed by _id, is a partition of its own — are packed, by the
// replica that owns them, into batches of up to 10 partitions and 4 KiB:
// their coordinator is then that replica for all of them, and one request
// carries ten rows instead of one, which is most of a single node's
// throughput. Within one call a later row for the same key replaces an
// earlier one before anything is sent: statements of one batch share a
// timestamp, and Cassandra would break that tie by value, not by order.
//
// A row to delete (sinks.Row.Delete) is a DELETE by its key, in the same
// batches; the last row of a key in one call wins, upsert or delete.
//
// Rows with a value Cassandra refuses (a null key, an int out of range,
// invalid UTF-8) come back as sinks.RowErrors and the others are written; a
// batch the server refuses is retried row by row to find the culprit.
// Timeouts and unavailable or overloaded nodes give a transient error.
func (s *Sink) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	if len(rows) == 0 {
		return nil
	}
	part, _ := keyLayout(t)
	partIdx, err1 := columnIndexes(t, part)
	keyIdx, err2 := columnIndexes(t, t.Key)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("cassandra sink %q: table %s: %w: %w", s.spec.Name, t.Name, err, sinks.ErrPermanent)
	}
	sess, err := s.conn()
	if err != nil {
		return err
	}
	insert, del := insertCQL(s.keyspace, t, s.ttl), deleteCQL(s.keyspace, t)

	var res result
	// stmts[i] is the statement row i binds args[i] to.
	args, stmts := make([][]any, len(rows)), make([]string, len(rows))
	last := make(map[string]int, len(rows))
	var kb []byte
	for i, r := range rows {
		a, err := bindRow(t, r.Values)
		if err != nil {
			res.rowErr(i, err)
			continue
		}
		args[i], stmts[i] = a, insert
		if r.Delete {
			args[i], stmts[i] = keyArgs(a, keyIdx), del
		}
		kb = sinks.AppendKey(kb[:0], r.Values, keyIdx)
		last[string(kb)] = i
	}
	parts := partitions(rows, args, last, keyIdx, partIdx)
	units := s.pack(sess, stmts, parts, rows, args)
	s.run(ctx, sess, stmts, units, args, &res)
	return res.err(s.spec.Name, t.Name)
}

// partitions groups the rows that survive dedup by partition key, in the
// order rows came.
func partitions(rows []sinks.Row, args [][]any, last map[string]int, keyIdx, partIdx []int) [][]int {
	groups := make(map[string]int) // partition key -> index into out
	var out [][]int
	var kb []byte
	for i, r := range rows {
		if args[i] == nil {
			continue
		}
		kb = sinks.AppendKey(kb[:0], r.Values, keyIdx)
		if last[string(kb)] != i {
			continue // replaced by a later row of this call
		}
		kb = sinks.AppendKey(kb[:0], r.Values, partIdx)
		g, ok := groups[string(kb)]
		if !ok {
			g = len(out)
			groups[string(kb)] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// pack cuts partitions into batches: a large partition alone, in batches of
// batchRows; small ones together with others of the same replica, within
// the limits of a multi-partition batch.
func (s *Sink) pack(sess *gocql.Session, stmts []string, parts [][]int, rows []sinks.Row, args [][]any) [][]int {
	type open struct {
		unit        int // index into units
		parts, size int
	}
	var units [][]int
	byReplica := make(map[string]*open)
	policy := s.hostPolicy()
	for _, p := range parts {
		size := 0
		for _, i := range p {
			size += rowSize(rows[i].Values)
		}
		if len(p) >= s.batchRows || size > maxBatchBytes/2 {
			for len(p) > 0 {
				n := min(len(p), s.batchRows)
				units = append(units, p[:n])
				p = p[n:]
			}
			continue
		}
		replica := replicaOf(sess, policy, stmts[p[0]], args[p[0]])
		o := byReplica[replica]
		if o == nil || o.parts >= maxBatchPartitions || len(units[o.unit])+len(p) > s.batchRows || o.size+size > maxBatchBytes {
			o = &open{unit: len(units)}
			byReplica[replica] = o
			units = append(units, nil)
		}
		units[o.unit] = append(units[o.unit], p...)
		o.parts++
		o.size += size
	}
	return units
}

// replicaOf names the replica the token-aware policy sends a row to first;
// "" when it cannot tell (no token metadata yet), which packs such rows
// together, as the policy then picks hosts round-robin anyway.
func replicaOf(sess *gocql.Session, policy gocql.HostSelectionPolicy, stmt string, args []any) string {
	if policy == nil {
		return ""
	}
	q := sess.Query(stmt, args...)
	defer q.Release()
	h := policy.Pick(q)()
	if h == nil || h.Info() == nil {
		return ""
	}
	return h.Info().HostID()
}

// rowSize estimates a row's size in a mutation as Cassandra measures it
// for batch size limits: a cell costs about 16 bytes besides its value
// (measured: a row of two timestamps, a short text, a bigint and a double
// counts about 113 bytes).
func rowSize(vals []event.Value) int {
	n := 32
	for _, v := range vals {
		n += 16 + len(v.S)
	}
	return n
}

// run executes units with at most inFlight running; the first transient or
// permanent failure stops the rest.
func (s *Sink) run(ctx context.Context, sess *gocql.Session, stmts []string, units [][]int, args [][]any, res *result) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(s.inFlight, len(units)) {
		wg.Go(func() {
			for u := range work {
				if err := s.runUnit(ctx, sess, stmts, u, args, res); err != nil {
					cancel()
				}
			}
		})
	}
feed:
	for _, u := range units {
		select {
		case work <- u:
		case <-ctx.Done():
			res.fail(kindTransient, ctx.Err())
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// runUnit writes one batch (or one row); it returns an error only for a
// failure that should stop the whole Write.
func (s *Sink) runUnit(ctx context.Context, sess *gocql.Session, stmts []string, u []int, args [][]any, res *result) error {
	err := execUnit(ctx, sess, stmts, u, args)
	if err == nil {
		return nil
	}
	switch kind := classify(err); {
	case kind == kindRow && len(u) == 1:
		res.rowErr(u[0], fmt.Errorf("refused by Cassandra: %w", err))
		return nil
	case kind == kindRow:
		// One row spoils its batch: find which by writing them alone.
		for _, i := range u {
			if err := execUnit(ctx, sess, stmts, []int{i}, args); err != nil {
				if k := classify(err); k != kindRow {
					res.fail(k, err)
					return err
				}
				res.rowErr(i, fmt.Errorf("refused by Cassandra: %w", err))
			}
		}
		return nil
	default:
		res.fail(kind, err)
		return err
	}
}

func execUnit(ctx context.Context, sess *gocql.Session, stmts []string, u []int, args [][]any) error {
	if len(u) == 1 {
		q := sess.Query(stmts[u[0]], args[u[0]]...).WithContext(ctx).Idempotent(true)
		err := q.Exec()
		q.Release()
		return err
	}
	b := sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	for _, i := range u {
		b.Query(stmts[i], args[i]...)
	}
	return sess.ExecuteBatch(b)
}

// result collects the outcome of one Write across workers.
type result struct {
	mu      sync.Mutex
	rows    sinks.RowErrors
	failed  error
	failKnd errKind
}

func (r *result) rowErr(i int, err error) {
	r.mu.Lock()
	r.rows = append(r.rows, sinks.RowError{Index: i, Err: err})
	r.mu.Unlock()
}

// fail keeps the first batch-wide failure; a permanent one wins over the
// cancellations it causes.
func (r *result) fail(k errKind, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil || (k == kindPermanent && r.failKnd != kindPermanent) {
		r.failed, r.failKnd = err, k
	}
}

func (r *result) err(sink, table string) error {
	switch {
	case r.failed != nil && r.failKnd == kindPermanent:
		return fmt.Errorf("cassandra sink %q: write %s: %w: %w", sink, table, r.failed, sinks.ErrPermanent)
	case r.failed != nil:
		// Rows refused so far are refused again on the retry and
		// reported then; reporting them now would dead-letter rows of a
		// batch the runner is going to write again.
		return fmt.Errorf("cassandra sink %q: write %s: %w", sink, table, r.failed)
	case len(r.rows) > 0:
		slices.SortFunc(r.rows, func(a, b sinks.RowError) int { return a.Index - b.Index })
		return r.rows
	}
	return nil
}

// keyArgs returns the key values of a row's bound values, in key order, as
// deleteCQL binds them.
func keyArgs(a []any, keyIdx []int) []any {
	out := make([]any, len(keyIdx))
	for j, i := range keyIdx {
		out[j] = a[i]
	}
	return out
}

// columnIndexes returns the positions of names in t's columns.
func columnIndexes(t sinks.Table, names []string) ([]int, error) {
	out := make([]int, len(names))
	for i, n := range names {
		out[i] = t.Columns.Index(n)
		if out[i] < 0 {
			return nil, fmt.Errorf("key column %q is not a column", n)
		}
	}
	return out, nil
}

// bindRow converts a row to the values gocql binds, and refuses what
// Cassandra would: a null key, an int out of range, a wrong number of values.
func bindRow(t sinks.Table, vals []event.Value) ([]any, error) {
	if len(vals) != len(t.Columns) {
		return nil, fmt.Errorf("row has %d values, table %s has %d columns", len(vals), t.Name, len(t.Columns))
	}
	out := make([]any, len(vals))
	for i, v := range vals {
		f := &t.Columns[i]
		if !v.Valid {
			if slices.Contains(t.Key, f.Name) {
				return nil, fmt.Errorf("column %q: null in a key column", f.Name)
			}
			// nil binds NULL, so a redelivered row with a field now
			// missing clears the old value, as an upsert should.
			continue
		}
		switch f.Type {
		case event.TypeString:
			out[i] = v.S
		case event.TypeLong:
			out[i] = v.I
		case event.TypeInt:
			if v.I < math.MinInt32 || v.I > math.MaxInt32 {
				return nil, fmt.Errorf("column %q: %d is out of range for int", f.Name, v.I)
			}
			out[i] = int32(v.I)
		case event.TypeDouble:
			out[i] = v.F
		case event.TypeBool:
			out[i] = v.I != 0
		case event.TypeTimestamp:
			// CQL timestamps are milliseconds; floor so that a time
			// before 1970 rounds down like a positive one does.
			ms := v.I / 1000
			if v.I%1000 < 0 {
				ms--
			}
			out[i] = ms
		default:
			return nil, fmt.Errorf("column %q: unsupported type %v", f.Name, f.Type)
		}
	}
	return out, nil
}
