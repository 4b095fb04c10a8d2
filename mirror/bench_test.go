package mirror

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// fill appends total events to s in entries of perEntry events per
// partition, as a busy (large entries) or quiet (small entries) ingest
// would have made them.
func fill(b *testing.B, s *site, total, perEntry int) {
	b.Helper()
	t := &s.p.Topics[0]
	ctx := context.Background()
	batch := make([][]event.Event, t.Partitions)
	for i := range total {
		ev := event.Event{ID: fmt.Sprintf("%s-%d", s.p.Site, i), Time: int64(i) * 1000, Values: []event.Value{
			{I: int64(i) * 1000, Valid: true}, {S: "host-" + strconv.Itoa(i%97), Valid: true}, {F: float64(i%1000) / 7, Valid: true}, {I: int64(i), Valid: true},
		}}
		p := event.EventPartition(&ev, 1, event.TypeString, t.Partitions)
		batch[p] = append(batch[p], ev)
		if len(batch[p]) == perEntry {
			if _, err := s.b.Append(ctx, "metrics", p, batch[p]); err != nil {
				b.Fatal(err)
			}
			batch[p] = batch[p][:0]
		}
	}
	for p, evs := range batch {
		if len(evs) > 0 {
			if _, err := s.b.Append(ctx, "metrics", p, evs); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLinkCatchUp measures how fast one link pulls a backlog (a site
// that was cut off catching up) from a site whose topic has 2 partitions
// into one with 4, every append fsynced: events/s and the seconds to lag 0.
// Entries of 1000 events are what a busy ingest writes (a backlog of
// 400,000 events), entries of 10 a quiet one (40,000). The baseline is the
// transport alone: a JetStream stream sourcing the same entries from
// another server over a leaf node connection, fsync on both (what a staging
// stream would copy before any relay re-appends them), in the same run.
func BenchmarkLinkCatchUp(b *testing.B) {
	for _, c := range []struct{ per, total int }{{1000, 400_000}, {10, 40_000}} {
		per, total := c.per, c.total
		b.Run(fmt.Sprintf("link/entry=%d", per), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				eu := newSite(b, "eu", 2)
				fill(b, eu, total, per)
				hq := newSite(b, "hq", 4, eu)
				b.StartTimer()
				start := time.Now()
				run := hq.runMirror()
				waitPulled(b, run, uint64(total))
				b.ReportMetric(time.Since(start).Seconds(), "s/catch-up")
				b.StopTimer()
				run.stop()
				hq.close()
				eu.close()
			}
			b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(fmt.Sprintf("jetstream-source/entry=%d", per), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				src, dst := leafPair(b)
				payloads := entries(total, per)
				jsa, _ := jetstream.New(src)
				ctx := context.Background()
				if _, err := jsa.CreateStream(ctx, jetstream.StreamConfig{Name: "EU", Subjects: []string{"eu.x"}}); err != nil {
					b.Fatal(err)
				}
				for i, p := range payloads {
					if _, err := jsa.PublishAsync("eu.x", p); err != nil {
						b.Fatal(err)
					}
					if i%1000 == 999 || i == len(payloads)-1 {
						select {
						case <-jsa.PublishAsyncComplete():
						case <-time.After(time.Minute):
							b.Fatal("publishing the entries took over a minute")
						}
					}
				}
				jsb, _ := jetstream.New(dst)
				b.StartTimer()
				start := time.Now()
				if _, err := jsb.CreateStream(ctx, jetstream.StreamConfig{Name: "STAGING",
					Sources: []*jetstream.StreamSource{{Name: "EU", Domain: "eu"}}}); err != nil {
					b.Fatal(err)
				}
				for {
					st, err := jsb.Stream(ctx, "STAGING")
					if err != nil {
						b.Fatal(err)
					}
					if st.CachedInfo().State.Msgs == uint64(len(payloads)) {
						break
					}
					if time.Since(start) > 5*time.Minute {
						b.Fatalf("the staging stream holds %d of %d entries", st.CachedInfo().State.Msgs, len(payloads))
					}
					time.Sleep(5 * time.Millisecond)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/catch-up")
				b.StopTimer()
				src.Close()
				dst.Close()
			}
			b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// waitPulled polls the link's counter until n events are appended.
func waitPulled(b *testing.B, run *mirrorRun, n uint64) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var s api.Stats
		run.mr.AddStats(&s)
		if len(s.Links) == 1 && s.Links[0].Events >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("pulled %+v of %d events", s.Links, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// entries encodes total events as entries of per events.
func entries(total, per int) [][]byte {
	var out [][]byte
	evs := make([]event.Event, 0, per)
	for i := range total {
		evs = append(evs, event.Event{ID: "eu-" + strconv.Itoa(i), Time: int64(i) * 1000, Values: []event.Value{
			{I: int64(i) * 1000, Valid: true}, {S: "host-" + strconv.Itoa(i%97), Valid: true}, {F: float64(i%1000) / 7, Valid: true}, {I: int64(i), Valid: true},
		}})
		if len(evs) == per || i == total-1 {
			out = append(out, broker.AppendEntry(nil, schema(), time.Now().UnixMicro(), evs))
			evs = evs[:0]
		}
	}
	return out
}

// leafPair starts two JetStream servers (fsync before ack, as the embedded
// log), the second joined to the first by a leaf node connection, each its
// own JetStream domain, and connects to each.
func leafPair(b *testing.B) (src, dst *nats.Conn) {
	b.Helper()
	start := func(o *server.Options) *server.Server {
		o.MaxPayload = 8 << 20
		return startNATS(b, o)
	}
	leaf := testenv.FreePort(b)
	a := start(&server.Options{ServerName: "eu", JetStreamDomain: "eu", LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: leaf}})
	u, err := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", leaf))
	if err != nil {
		b.Fatal(err)
	}
	h := start(&server.Options{ServerName: "hq", JetStreamDomain: "hq", LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}}}})
	deadline := time.Now().Add(10 * time.Second)
	for a.NumLeafNodes() == 0 || h.NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the leaf node connection did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if src, err = nats.Connect(a.ClientURL()); err != nil {
		b.Fatal(err)
	}
	if dst, err = nats.Connect(h.ClientURL()); err != nil {
		b.Fatal(err)
	}
	return src, dst
}
