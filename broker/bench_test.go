package broker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawBaseline measures plain JetStream: one message per event (100 B,
// about the event as JSON), async publish, file store, no fsync before the
// ack: the anchor the targets compare to. Each sub-benchmark measures it
// afresh, once (not once per b.N round), so that the ratio compares runs
// close in time on a machine whose load varies.
type rawBaseline struct {
	mu   sync.Mutex
	byID map[string]float64
}

func (r *rawBaseline) get(b *testing.B) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.byID[b.Name()]; ok {
		return v
	}
	v, err := measureRaw(100_000)
	if err != nil {
		b.Fatal(err)
	}
	if r.byID == nil {
		r.byID = map[string]float64{}
	}
	r.byID[b.Name()] = v
	return v
}

func measureRaw(msgs int) (float64, error) {
	dir, err := os.MkdirTemp("", "lf-raw-baseline-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		return 0, err
	}
	ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		return 0, fmt.Errorf("raw baseline server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	payload := []byte(strings.Repeat("x", 100))
	start := time.Now()
	for range msgs {
		if _, err := js.PublishAsync("raw", payload, jetstream.WithStallWait(10*time.Second)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(msgs) / time.Since(start).Seconds(), nil
}

// BenchmarkAppend appends entries of K events, fsync before ack, from 16
// goroutines over 4 partitions, and compares events/s with rawBaseline.
func BenchmarkAppend(b *testing.B) {
	var raw rawBaseline
	for _, k := range []int{1, 16, 64, 256, 1000} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			benchAppend(b, k, 4, raw.get(b))
		})
	}
}

// BenchmarkAppendOnePartition shows the ceiling of one partition, whose
// appends are serialised: one round trip plus one fsync per entry.
func BenchmarkAppendOnePartition(b *testing.B) {
	var raw rawBaseline
	b.Run("K=64", func(b *testing.B) {
		benchAppend(b, 64, 1, raw.get(b))
	})
}

func benchAppend(b *testing.B, k, partitions int, raw float64) {
	br := openBroker(b, testPipeline(b.TempDir(), testTopic("metrics", partitions)), Options{})
	events := testEvents("0195f2c4-7d1e-7c1a-9c3b", 0, k, base)
	size := len(AppendEntry(nil, testSchema(), base, events))
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(8) // 16 appenders on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		part := int(next.Add(1)) % partitions
		for pb.Next() {
			if _, err := br.Append(ctx, "metrics", part, events); err != nil {
				b.Error(err)
				return
			}
		}
	})
	eps := float64(b.N) * float64(k) / time.Since(start).Seconds()
	b.ReportMetric(eps, "events/s")
	b.ReportMetric(eps/raw, "x_vs_raw")
	b.ReportMetric(raw, "raw_events/s")
}
