package cassandra

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// testHosts returns the Cassandra the tests run against, from
// LF_TEST_CASSANDRA_HOSTS (sinktest.Service).
func testHosts(tb testing.TB) []string {
	tb.Helper()
	return strings.Split(sinktest.Service(tb, "LF_TEST_CASSANDRA_HOSTS", "cassandra"), ",")
}

// testKeyspace is a fresh keyspace name, so tests never see each other's
// tables.
func testKeyspace() string { return sinktest.UniqueName("lft_") }

// newTestSink returns a sink on a fresh keyspace that is dropped after the
// test; edit changes the spec before the sink is made.
func newTestSink(tb testing.TB, edit func(*pipelines.Sink)) *Sink {
	tb.Helper()
	spec := &pipelines.Sink{
		Name: "cass_test", Type: "cassandra", Create: true,
		Config: &Config{Hosts: testHosts(tb), Keyspace: testKeyspace(), Consistency: "local_quorum"},
	}
	if edit != nil {
		edit(spec)
	}
	s, err := New(context.Background(), spec, sinktest.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if sess, err := s.conn(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := sess.Query("DROP KEYSPACE IF EXISTS " + quote(spec.Config.(*Config).Keyspace)).WithContext(ctx).Exec(); err != nil {
				tb.Logf("drop keyspace %s: %v", spec.Config.(*Config).Keyspace, err)
			}
		}
		_ = s.Close()
	})
	return s
}

// readAll reads every row of t back as values in t's column order, sorted by
// key; timestamps come back as microseconds (whole milliseconds).
func readAll(ctx context.Context, s *Sink, t sinks.Table) ([][]event.Value, error) {
	sess, err := s.conn()
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(t.Columns))
	for i, f := range t.Columns {
		cols[i] = quote(f.Name)
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(cols, ", "), quote(s.keyspace), quote(t.Name))
	iter := sess.Query(q).WithContext(ctx).PageSize(5000).Iter()
	var out [][]event.Value
	for {
		dest := make([]any, len(t.Columns))
		for i, f := range t.Columns {
			switch f.Type {
			case event.TypeString:
				dest[i] = new(*string)
			case event.TypeLong:
				dest[i] = new(*int64)
			case event.TypeInt:
				dest[i] = new(*int32)
			case event.TypeDouble:
				dest[i] = new(*float64)
			case event.TypeBool:
				dest[i] = new(*bool)
			case event.TypeTimestamp:
				dest[i] = new(*time.Time)
			}
		}
		if !iter.Scan(dest...) {
			break
		}
		row := make([]event.Value, len(dest))
		for i, d := range dest {
			switch p := d.(type) {
			case **string:
				if *p != nil {
					row[i] = event.Value{S: **p, Valid: true}
				}
			case **int64:
				if *p != nil {
					row[i] = event.Value{I: **p, Valid: true}
				}
			case **int32:
				if *p != nil {
					row[i] = event.Value{I: int64(**p), Valid: true}
				}
			case **float64:
				if *p != nil {
					row[i] = event.Value{F: **p, Valid: true}
				}
			case **bool:
				if *p != nil {
					row[i] = event.Value{Valid: true}
					if **p {
						row[i].I = 1
					}
				}
			case **time.Time:
				if *p != nil {
					row[i] = event.Value{I: (*p).UnixMicro(), Valid: true}
				}
			}
		}
		out = append(out, row)
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	sortRows(t, out)
	return out, nil
}

// sortRows orders rows by their key values.
func sortRows(t sinks.Table, rows [][]event.Value) {
	idx, _ := columnIndexes(t, t.Key)
	slices.SortFunc(rows, func(a, b []event.Value) int {
		return strings.Compare(string(sinks.AppendKey(nil, a, idx)), string(sinks.AppendKey(nil, b, idx)))
	})
}
