package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestPublishOverNATS: a NATS-native service publishes with a request to
// lf.publish.<topic> on the embedded server, with the same validation,
// dedup and durability as HTTP, and gets the same answer.
func TestPublishOverNATS(t *testing.T) {
	addr := testenv.FreeAddr(t)
	topic := *metricsTopic(2)
	topic.WriteTokens = []string{"w-token"}
	p := testPipeline(t.TempDir(), topic)
	p.Broker.Listen = addr
	h, b := startOnBroker(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := h.in.ServeNATS(ctx, b); err != nil {
			t.Errorf("ServeNATS: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	request := func(subject, body string, hdr nats.Header) (string, string) {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: []byte(body), Header: hdr}
		var resp *nats.Msg
		// The subscription is made when ServeNATS starts: retry "no
		// responders" until it is there.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err = nc.RequestMsg(m, 10*time.Second)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("request %s: %v", subject, err)
		}
		return resp.Header.Get("Lf-Status"), string(resp.Data)
	}
	auth := nats.Header{"Authorization": []string{"Bearer w-token"}, "Idempotency-Key": []string{"k1"}}
	ev := `{"ts":"2026-01-02T15:04:05Z","host":"web-1","region":"eu","cpu":0.5,"bytes":10}`

	status, body := request("lf.publish.metrics", ev+"\n"+ev, auth)
	want := `{"accepted":2,"results":[{"partition":1,"offset":0,"duplicate":false},{"partition":1,"offset":1,"duplicate":false}]}` + "\n"
	if status != "200" || body != want {
		t.Fatalf("publish: %s %s, want 200 %s", status, body, want)
	}
	// The same Idempotency-Key again: duplicates, nothing appended.
	status, body = request("lf.publish.metrics", ev+"\n"+ev, auth)
	if want := `{"accepted":0,"results":[{"partition":1,"offset":0,"duplicate":true},{"partition":1,"offset":1,"duplicate":true}]}` + "\n"; status != "200" || body != want {
		t.Errorf("retry: %s %s, want 200 %s", status, body, want)
	}
	// An invalid event: 400 naming the field, nothing written.
	status, body = request("lf.publish.metrics", `{"ts":"2026-01-02T15:04:05Z","host":"web-1","region":"eu","cpu":"x","bytes":1}`, auth)
	if want := `{"error":"line 1: record 0: field \"cpu\": expected double, got string","record":0,"line":1,"field":"cpu"}` + "\n"; status != "400" || body != want {
		t.Errorf("invalid: %s %s, want 400 %s", status, body, want)
	}
	// Without the write token: 401.
	if status, _ = request("lf.publish.metrics", ev, nil); status != "401" {
		t.Errorf("without a token: %s, want 401", status)
	}
	// An unknown topic: 404.
	if status, _ = request("lf.publish.nope", ev, auth); status != "404" {
		t.Errorf("unknown topic: %s, want 404", status)
	}
	if got := ends(t, b, "metrics"); got[0] != 0 || got[1] != 2 {
		t.Errorf("ends %v, want [0 2]", got)
	}
}
