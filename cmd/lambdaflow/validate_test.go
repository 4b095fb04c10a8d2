package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateRefusesDSNsAndSchedules: validate parses a PostgreSQL DSN as
// the driver will (without showing it: it may hold a password) and refuses
// zero or sub-second @every schedules, each with file:line:col.
func TestValidateRefusesDSNsAndSchedules(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	src := strings.Join([]string{
		"version: 1",
		"name: p",
		"topics:",
		"  - name: m",
		"    schema: {ts: timestamp, n: long}",
		"views:",
		"  - name: v",
		"    from: m",
		"    window: {type: tumbling, size: 1m}",
		"    aggregates: {n: count()}",
		"    batch: {schedule: '@every 0s'}",
		"sinks:",
		"  - name: a",
		"    type: postgres",
		"    dsn: 'postgres://lf:s3cret@db:notaport/lf'",
		"    from: [m]",
		"  - name: b",
		"    type: postgres",
		"    dsn: 'postgres://lf:s3cret@db/lf?sslmode=maybe'",
		"    from: [m]",
		"  - name: c",
		"    type: postgres",
		"    dsn: 'host=db port=5432 dbname=lf'",
		"    from: [m]",
	}, "\n") + "\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", "validate", file)
	want := file + ":11:23: views[0].batch.schedule: @every needs an interval of at least 1s, got 0s\n" +
		file + ":15:10: sinks[0].dsn: not a PostgreSQL connection string (postgres://user:password@host:5432/db?sslmode=disable, or key=value pairs): invalid port\n" +
		file + ":19:10: sinks[1].dsn: not a PostgreSQL connection string (postgres://user:password@host:5432/db?sslmode=disable, or key=value pairs): failed to configure TLS (sslmode is invalid)\n" +
		"lambdaflow validate: 1 of 1 files invalid\n"
	if code != 1 || errOut != want {
		t.Fatalf("validate: exit %d\n%s\nwant exit 1\n%s", code, errOut, want)
	}
	if strings.Contains(errOut, "s3cret") {
		t.Fatal("validate shows a DSN's password")
	}
}
