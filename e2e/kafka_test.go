package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestKafkaEventsReachEveryLayer: events produced by a Kafka client land
// like HTTP ones: at the offsets the producer was told (the message
// browser shows them there), in the view, in the lake and in the sink.
func TestKafkaEventsReachEveryLayer(t *testing.T) {
	kafkaAddr := testenv.FreeAddr(t)
	t.Setenv("E2E_KAFKA", kafkaAddr)
	p := startT(t, "kafka", "kafka.yaml", "")

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts := "2026-01-02T15:04:%02dZ"
	var recs []*kgo.Record
	for i := range 4 {
		v := fmt.Sprintf(`{"ts":"`+ts+`","host":"k-%d","region":"eu","cpu":0.5,"bytes":100}`, i, i)
		recs = append(recs, &kgo.Record{Topic: "metrics", Value: []byte(v), Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(fmt.Sprintf("kafka-%d", i))}}})
	}
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var http []map[string]any
	for i := range 4 {
		http = append(http, map[string]any{"id": fmt.Sprintf("http-%d", i), "ts": fmt.Sprintf(ts, 10+i), "host": fmt.Sprintf("h-%d", i), "region": "eu", "cpu": 0.5, "bytes": 10})
	}
	p.post(t, "metrics", http)

	// The browser shows each Kafka event at the offset the producer got.
	for _, r := range res {
		part := int(r.Record.Partition)
		page := got(p.api.Events(bg, "metrics", client.Browse{Partition: &part, Offsets: map[string]int64{strconv.Itoa(part): r.Record.Offset}, Limit: 1}))(t)
		if len(page.Events) != 1 || page.Events[0].ID != string(r.Record.Headers[0].Value) || page.Events[0].Offset != r.Record.Offset {
			t.Errorf("browser at %d/%d: %+v, want %s", part, r.Record.Offset, page.Events, r.Record.Headers[0].Value)
		}
	}

	// Every consumer catches up: the view, the lake and the sink have all 8.
	testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		lag, err := p.api.Lag(bg)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, l := range lag {
			seen[l.Consumer] = true
			if l.Lag != 0 {
				return fmt.Errorf("%s on %d: lag %d", l.Consumer, l.Partition, l.Lag)
			}
		}
		for _, c := range []string{"speed.cpu_by_region", "lake", "sink.warehouse"} {
			if !seen[c] {
				return fmt.Errorf("no consumer %s yet", c)
			}
		}
		return nil
	})
	var rows []struct {
		Region string `json:"region"`
		Events int64  `json:"events"`
		Bytes  int64  `json:"bytes"`
	}
	got(p.api.QueryInto(bg, "cpu_by_region", url.Values{"region": {"eu"}}, time.Time{}, time.Time{}, &rows))(t)
	if len(rows) != 1 || rows[0].Events != 8 || rows[0].Bytes != 440 {
		t.Errorf("view rows %+v, want one window of 8 events and 440 bytes", rows)
	}
	st := got(p.api.Stats(bg))(t)
	if st.Batch == nil {
		t.Fatalf("stats without the batch layer")
	}
	lake, sink := false, false
	for _, l := range st.Batch.Lake {
		if l.Topic == "metrics" {
			lake = true
			if l.Rows != 8 {
				t.Errorf("lake of metrics: %+v, want 8 rows", l)
			}
		}
	}
	for _, s := range st.Sinks {
		if s.Sink == "warehouse" {
			sink = true
			if s.Rows != 8 {
				t.Errorf("sink warehouse: %+v, want 8 rows", s)
			}
		}
	}
	if !lake || !sink {
		t.Errorf("stats show the lake of metrics: %v, the sink warehouse: %v", lake, sink)
	}

	// A record that is no event of the topic is refused, and counted.
	bad := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "metrics", Value: []byte("not json")})
	if err := bad.FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("producing a record that is not JSON: %v, want %v", err, kerr.InvalidRecord)
	}
	checkDashboardMetrics(t, func() (map[string]*dto.MetricFamily, error) { return scrape(p.api) }, "kafka")
}
