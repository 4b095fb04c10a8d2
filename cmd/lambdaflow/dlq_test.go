package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDLQCommands runs a PostgreSQL sink that gets one record PostgreSQL
// refuses (a NUL byte in text): the rest lands, `dlq list` shows the record
// with its reason, and `dlq replay` reports it failing again.
func TestDLQCommands(t *testing.T) {
	dsn := os.Getenv("LF_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("LF_REQUIRE_SERVICES") == "1" {
			t.Fatal("LF_TEST_POSTGRES_DSN is not set; run deploy/dev/services.sh up")
		}
		t.Skip("needs PostgreSQL: run deploy/dev/services.sh up and eval \"$(deploy/dev/services.sh env)\"")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS notes`); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "testdata/dlq.yaml", t.TempDir())
	body := `{"id":"a","author":"ann","text":"hello"}
{"id":"b","author":"bob","text":"bad\u0000byte"}
{"id":"c","author":"cy","text":"bye"}
`
	post(t, s, "notes", body)
	var rows int
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn.QueryRow(ctx, `SELECT count(*) FROM notes`).Scan(&rows)
		out, _, _ := runCLI(t, "", "dlq", "list", "pg", "--addr", s.addr)
		if rows == 2 && strings.Count(out, "\n") == 2 {
			if !strings.Contains(out, "notes") || !strings.Contains(out, `"_id":"b"`) {
				t.Fatalf("dlq list does not show the record:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %d rows in PostgreSQL (want 2); dlq list:\n%s", rows, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var got []string
	r, err := conn.Query(ctx, `SELECT _id || ':' || author || ':' || text FROM notes ORDER BY _id`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s string
		r.Scan(&s)
		got = append(got, s)
	}
	if strings.Join(got, ",") != "a:ann:hello,c:cy:bye" {
		t.Errorf("rows in PostgreSQL: %v", got)
	}
	out, _, code := runCLI(t, "", "dlq", "replay", "pg", "--addr", s.addr)
	if code != 1 || out != "replayed 0 dead letters of pg; 1 failed again and are back in the dead-letter topic\n" {
		t.Errorf("dlq replay: exit %d, %q", code, out)
	}
	_, errOut, code := runCLI(t, "", "dlq", "list", "nope", "--addr", s.addr)
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("dlq list of an unknown sink: %d %q", code, errOut)
	}
}
