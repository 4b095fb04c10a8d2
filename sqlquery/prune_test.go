//go:build !noduckdb

package sqlquery

import (
	"database/sql"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestTableBounds reads the event-time bounds of lake tables from DuckDB's
// own parse of queries: only conjuncts of the WHERE of the SELECT that
// names the table directly bound it, widened by a day.
func TestTableBounds(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	day := 24 * time.Hour
	span := func(from, to string) Span {
		var s Span
		if from != "" {
			s.From = at(from).Add(-day)
		}
		if to != "" {
			s.To = at(to).Add(day)
		}
		return s
	}
	cases := []struct {
		name, q string
		want    Span // of the first table named clicks
	}{
		{"half-open", `SELECT * FROM lake.clicks WHERE _event_time >= '2026-03-01T10:00:00Z' AND page = 'a' AND _event_time < TIMESTAMP '2026-03-01 11:00:00'`,
			span("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")},
		{"the time field, qualified", `SELECT * FROM clicks c WHERE c.ts BETWEEN '2026-03-01' AND '2026-03-02 06:00'`,
			span("2026-03-01T00:00:00Z", "2026-03-02T06:00:00Z")},
		{"constant first, with a zone", `SELECT * FROM clicks WHERE TIMESTAMPTZ '2026-03-01 10:00:00+02' <= _event_time`,
			span("2026-03-01T08:00:00Z", "")},
		{"equal, a date", `SELECT * FROM clicks WHERE _event_time = DATE '2026-03-05'`,
			span("2026-03-05T00:00:00Z", "2026-03-05T00:00:00Z")},
		{"two bounds narrow", `SELECT * FROM clicks WHERE _event_time > '2026-03-01' AND _event_time > '2026-03-04' AND ts < '2026-03-08'`,
			span("2026-03-04T00:00:00Z", "2026-03-08T00:00:00Z")},
		{"now minus an interval", `SELECT * FROM clicks WHERE _event_time > now() - INTERVAL 2 DAY`,
			span("2026-03-08T12:00:00Z", "")},
		{"now minus a string interval", `SELECT * FROM clicks WHERE _event_time >= get_current_timestamp() - INTERVAL '1 day 6 hours' AND _event_time < now()`,
			span("2026-03-09T06:00:00Z", "2026-03-10T12:00:00Z")},
		{"in a subquery's own WHERE", `SELECT count(*) FROM (SELECT * FROM clicks WHERE _event_time > '2026-03-01') s`,
			span("2026-03-01T00:00:00Z", "")},
		{"joined, qualified", `SELECT * FROM lake.clicks c JOIN views.per_page v ON c.page = v.page WHERE c._event_time < '2026-03-02'`,
			span("", "2026-03-02T00:00:00Z")},
		{"outer join", `SELECT * FROM views.per_page v LEFT JOIN clicks ON clicks.page = v.page WHERE clicks._event_time >= '2026-03-02'`,
			span("2026-03-02T00:00:00Z", "")},

		{"an OR", `SELECT * FROM clicks WHERE _event_time > '2026-03-01' OR page = 'a'`, Span{}},
		{"a NOT (DuckDB turns it round)", `SELECT * FROM clicks WHERE NOT _event_time < '2026-03-01'`, span("2026-03-01T00:00:00Z", "")},
		{"a NOT of two", `SELECT * FROM clicks WHERE NOT (_event_time < '2026-03-01' AND page = 'a')`, Span{}},
		{"another table's column", `SELECT * FROM clicks c JOIN views.per_page v ON true WHERE v.window_start > '2026-03-01'`, Span{}},
		{"unqualified beside a join", `SELECT * FROM clicks c JOIN views.per_page v ON true WHERE _event_time > '2026-03-01'`, Span{}},
		{"an outer WHERE over a subquery", `SELECT * FROM (SELECT * FROM clicks) s WHERE s._event_time > '2026-03-01'`, Span{}},
		{"a sample of the rows", `SELECT * FROM clicks WHERE _event_time > '2026-03-01' USING SAMPLE 10`, Span{}},
		{"a sample of the table", `SELECT * FROM clicks TABLESAMPLE 10% WHERE _event_time > '2026-03-01'`, Span{}},
		{"an ASOF join", `SELECT * FROM views.per_page v ASOF JOIN clicks c ON v.window_start >= c._event_time WHERE c._event_time > '2026-03-01'`, Span{}},
		{"a positional join", `SELECT * FROM views.per_page v POSITIONAL JOIN clicks c WHERE c._event_time > '2026-03-01'`, Span{}},
		{"columns renamed", `SELECT * FROM clicks AS c(_event_time) WHERE _event_time > '2026-03-01'`, Span{}},
		{"not a time", `SELECT * FROM clicks WHERE _event_time > 'yesterday'`, Span{}},
		{"another column", `SELECT * FROM clicks WHERE _ingest_time > '2026-03-01'`, Span{}},
		{"a month is no fixed length", `SELECT * FROM clicks WHERE _event_time > now() - INTERVAL 1 MONTH`, Span{}},
		{"an interval past any time", `SELECT * FROM clicks WHERE _event_time > now() - INTERVAL 2000000000 WEEK`, Span{}},
		{"a string interval past any time", `SELECT * FROM clicks WHERE _event_time > now() - INTERVAL '2000000000 weeks'`, Span{}},
		{"a column", `SELECT * FROM clicks WHERE _event_time > ts`, Span{}},
		{"in the ON", `SELECT * FROM views.per_page v JOIN clicks c ON c._event_time > '2026-03-01'`, Span{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var js string
			if err := db.QueryRow("SELECT CAST(json_serialize_sql(CAST(? AS VARCHAR)) AS VARCHAR)", c.q).Scan(&js); err != nil {
				t.Fatal(err)
			}
			refs, perr := checkParsed(c.q, []byte(js), now)
			if perr != nil {
				t.Fatal(perr)
			}
			for _, r := range refs {
				if r.name != "clicks" {
					continue
				}
				if got := r.bounds.span(event.ColEventTime, "ts"); got != c.want {
					t.Fatalf("%s\nspan [%v, %v), want [%v, %v)", c.q, got.From, got.To, c.want.From, c.want.To)
				}
				return
			}
			t.Fatalf("no table clicks in %+v", refs)
		})
	}
}
