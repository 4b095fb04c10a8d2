package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/client"
)

// TestRoles runs only the ingest role: ingest answers, the serve role's
// routes are absent, and no consumer of the other roles appears. An unknown
// role is a usage error that starts nothing.
func TestRoles(t *testing.T) {
	_, errOut, code := runCLI(t, "", "run", "-c", "testdata/lambda.yaml", "--role", "ingest,bogus")
	if code != 2 || !strings.Contains(errOut, `unknown role "bogus" (roles: ingest, speed, batch, sinks, serve, all)`) {
		t.Fatalf("unknown role: exit %d, %q", code, errOut)
	}

	s := launchArgs(t, []string{"--role", "ingest"}, "testdata/lambda.yaml", t.TempDir())
	waitReady(t, s)
	c, ctx := s.client(), context.Background()
	post(t, s, "clicks", `{"ts":"2026-03-01T10:00:05Z","page":"a","ms":10}`+"\n")
	for _, path := range []string{"/v1/views/per_page", "/v1/lag", "/v1/topics"} {
		err := c.Get(ctx, path, nil, nil)
		if client.StatusOf(err) != http.StatusNotFound {
			t.Errorf("GET %s with --role ingest: %v, want 404 (the serve role is not running)", path, err)
		}
	}
	raw, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	if !strings.Contains(body, `lambdaflow_ingest_events_total{component="ingest",pipeline="lambda",topic="clicks"} 1`) {
		t.Errorf("ingest metrics missing from --role ingest")
	}
	if strings.Contains(body, "lambdaflow_speed_") || strings.Contains(body, "lambdaflow_lake_") {
		t.Errorf("speed or batch metrics in a process running only ingest")
	}
	if h, err := c.Ready(ctx); err != nil || h.Status != "ready" {
		t.Errorf("/readyz %v %+v", err, h)
	}
}
