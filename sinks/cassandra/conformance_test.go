package cassandra

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// TestConformance runs the shared sink suite against the real Cassandra.
func TestConformance(t *testing.T) {
	hosts := sinktest.Service(t, "LF_TEST_CASSANDRA_HOSTS", "cassandra")
	sinktest.Run(t, sinktest.Harness{
		Sink: func(t *testing.T) pipelines.Sink {
			ks := testKeyspace()
			t.Cleanup(func() { dropKeyspace(t, strings.Split(hosts, ","), ks) })
			return pipelines.Sink{Type: "cassandra", Config: &Config{Hosts: strings.Split(hosts, ","), Keyspace: ks, Consistency: "local_quorum"}}
		},
		NewTarget: sinktest.Opener(Kind()),
		ReadAll: func(t *testing.T, target sinks.Target, _ *pipelines.Sink, table sinks.Table) []map[string]any {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rows, err := readAll(ctx, target.(*Sink), table)
			if err != nil {
				t.Fatalf("reading %s: %v", table.Name, err)
			}
			out := make([]map[string]any, len(rows))
			for i, r := range rows {
				m := make(map[string]any, len(r))
				for j, f := range table.Columns {
					m[f.Name] = event.GoValue(f.Type, r[j])
				}
				out[i] = m
			}
			return out
		},
		// An int out of range is refused before it is sent; it survives
		// the dead-letter record's JSON, unlike invalid UTF-8.
		Poison: func(*testing.T) (event.FieldType, event.Value) {
			return event.TypeInt, event.Value{I: math.MaxInt32 + 1, Valid: true}
		},
		Outage:        sinktest.DevOutage("../../deploy/dev/cassandra.sh", hosts, "LF_CASSANDRA_PORT", "9042"),
		TimePrecision: time.Millisecond,
		Timeout:       3 * time.Minute,
	})
}

// dropKeyspace removes a test's keyspace with a session of its own, as the
// suite has closed its targets by then.
func dropKeyspace(t *testing.T, hosts []string, ks string) {
	s, err := New(context.Background(), &pipelines.Sink{Name: "cleanup", Config: &Config{Hosts: hosts, Keyspace: ks}}, nil)
	if err != nil {
		t.Log(err)
		return
	}
	defer s.Close()
	sess, err := s.conn()
	if err != nil {
		t.Logf("drop keyspace %s: %v", ks, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sess.Query(fmt.Sprintf("DROP KEYSPACE IF EXISTS %s", quote(ks))).WithContext(ctx).Exec(); err != nil {
		t.Logf("drop keyspace %s: %v", ks, err)
	}
}
