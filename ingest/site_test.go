package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// sourcedTopic is metricsTopic with a source, so with the site field.
func sourcedTopic() *pipelines.Topic {
	t := metricsTopic(1)
	t.Sources = []pipelines.Source{{Site: "eu", URL: "nats://eu:4222", Prefix: "LF"}}
	t.Schema = append(t.Schema, event.Field{Name: pipelines.SiteField, Type: event.TypeString, Required: true})
	return t
}

// TestIngestSetsSite checks that events accepted into a topic with sources
// carry this site in _site, that a producer cannot set it, and that ids of
// events pulled from other sites do not make local ones duplicates (their
// source positions dedup them), also after a restart.
func TestIngestSetsSite(t *testing.T) {
	p := testPipeline(t.TempDir(), *sourcedTopic())
	p.Site = "hq"
	h, b := startOnBroker(t, p)
	const ev = `"ts":"2024-05-01T10:00:00Z","host":"h1","region":"eu","cpu":0.5,"bytes":1`

	// Pulled from eu first: id "a" there.
	pulled := event.Event{ID: "a", Time: 1, Values: []event.Value{{I: 1, Valid: true}, val("h9"), val("eu"), {F: 1, Valid: true}, {I: 9, Valid: true}, val("eu")}}
	if _, err := b.AppendFrom(context.Background(), "metrics", 0, []event.Event{pulled}, broker.Origin{Source: "eu/metrics/0", Start: 0, End: 1}); err != nil {
		t.Fatal(err)
	}
	if r := h.postOK("metrics", `{"id":"a",`+ev+`}`); r.Accepted != 1 {
		t.Fatalf("a local event with a pulled event's id: %+v", r)
	}
	code, out, _ := h.post("metrics", `{"id":"b",`+ev+`,"_site":"eu"}`)
	if code != http.StatusBadRequest || !strings.Contains(out, `the site of origin is set by the site that accepts the event`) || !strings.Contains(out, `"field":"_site"`) {
		t.Errorf("a producer setting _site: %d %s", code, out)
	}
	got := logEvents(t, b, "metrics", 0)
	if len(got) != 2 || got[0].Values[5].S != "eu" || got[1].ID != "a" || got[1].Values[5] != val("hq") {
		t.Fatalf("log %+v", got)
	}

	// After a restart the rebuilt index holds only this site's ids.
	h.stop()
	b.Close()
	h2, _ := startOnBroker(t, p)
	h2.clock.Add(time.Second)
	r := h2.postOK("metrics", `{"id":"a",`+ev+`}`)
	if r.Accepted != 0 || !r.Results[0].Duplicate || r.Results[0].Offset != 1 {
		t.Errorf("the local id after a restart: %+v, want a duplicate of offset 1", r)
	}
}
