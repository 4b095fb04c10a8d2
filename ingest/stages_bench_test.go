package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
)

// BenchmarkIngestOneStages takes BenchmarkHTTPIngestOne (one client, one
// event per request, one at a time) apart: each sub-benchmark is one stage
// of that request alone, one op at a time, and reports its p50/p99 (µs).
//
//   - http: a POST of the same body over loopback to a handler that reads
//     it and answers a reply of the same size (net/http both ways);
//   - decode: decoding and validating the body into an event, ids given;
//   - append/sync=…: broker.Append of that one event to the real
//     embedded log (JetStream publish, its ack, and with sync=always the
//     fsync before it), without and with the dedup check of its id.
//
// What the full path adds to their sum is the hand-off through the
// partition's batcher and the answer.
func BenchmarkIngestOneStages(b *testing.B) {
	body := ndjsonBody(1, 7)
	reply := appendReply(nil, 1, []result{{partition: 3, offset: 123456}})

	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(reply)
		}))
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		defer client.CloseIdleConnections()
		stageLatency(b, func() error {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		})
	})

	b.Run("decode", func(b *testing.B) {
		in, err := New(testPipeline(b.TempDir(), *metricsTopic(4)), newFakeLog(false), Options{})
		if err != nil {
			b.Fatal(err)
		}
		ts := in.topics["metrics"]
		bufs := new(requestBufs)
		stageLatency(b, func() error {
			now := time.Now()
			events, derr := ts.dec.decode(body, now.UnixMicro(), bufs)
			if derr != nil {
				return derr
			}
			in.assignIDs(events, "", now)
			bufs.reset(events)
			return nil
		})
	})

	for _, sync := range []string{"always", "interval"} {
		for _, unique := range []bool{false, true} {
			b.Run(fmt.Sprintf("append/sync=%s/dedup=%v", sync, unique), func(b *testing.B) {
				p := testPipeline(b.TempDir(), *metricsTopic(4))
				p.Broker.Sync = sync
				ctx := context.Background()
				br, err := broker.Open(ctx, p, broker.Options{Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				defer br.Close()
				if err := br.EnsureTopics(ctx); err != nil {
					b.Fatal(err)
				}
				in, err := New(p, newFakeLog(false), Options{})
				if err != nil {
					b.Fatal(err)
				}
				events, derr := in.topics["metrics"].dec.decode(body, time.Now().UnixMicro(), new(requestBufs))
				if derr != nil {
					b.Fatal(derr)
				}
				in.assignIDs(events, "", time.Now())
				i := 0
				stageLatency(b, func() error {
					if unique {
						// A fresh id each time: checked, not found, remembered.
						events[0].ID = fmt.Sprintf("stage-%d", i)
						i++
					}
					_, err := br.AppendUnique(ctx, "metrics", 1, events, []bool{unique})
					return err
				})
			})
		}
	}
}

// stageLatency runs op b.N times, one at a time, and reports its p50 and
// p99 in µs.
func stageLatency(b *testing.B, op func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)])/1e3, "p99-µs")
}
