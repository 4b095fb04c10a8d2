// Command kafkaproduce measures Kafka-protocol produce throughput: one
// producer (franz-go, acks=all, idempotent) against a real Apache Kafka
// broker and against Lambdaflow's Kafka listener, and the same records
// over Lambdaflow's HTTP ingest, in interleaved rounds, and prints the
// medians as a Markdown table (the one in BENCHMARKS.md).
//
//	make bench-kafka
//	go run ./bench/kafkaproduce -kafka 127.0.0.1:59092 -lambdaflow bin/lambdaflow
//
// Lambdaflow runs as its own process (`lambdaflow run --role ingest`, an
// embedded log fsynced before every acknowledgement) on a fresh data
// directory. The Kafka broker is measured twice: with its defaults (an
// acknowledgement does not wait for fsync) and on a topic with
// flush.messages=1 (fsync after every append, as Lambdaflow does).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	kafkaAddr := flag.String("kafka", os.Getenv("LF_BENCH_KAFKA"), "address of the Apache Kafka broker (deploy/bench/kafka-broker.sh)")
	binary := flag.String("lambdaflow", "bin/lambdaflow", "the lambdaflow binary")
	records := flag.Int("records", 1_000_000, "records per run")
	rounds := flag.Int("rounds", 5, "interleaved rounds; medians are reported")
	clients := flag.Int("http-clients", 16, "concurrent HTTP clients")
	body := flag.Int("http-body", 100, "events per HTTP request")
	flag.Parse()
	if *kafkaAddr == "" {
		log.Fatal("no Kafka broker: pass -kafka or set LF_BENCH_KAFKA (deploy/bench/kafka-broker.sh start)")
	}
	values := makeValues(*records)
	lf, err := startLambdaflow(*binary)
	if err != nil {
		log.Fatal(err)
	}
	defer lf.stop()
	if err := createTopics(*kafkaAddr); err != nil {
		log.Fatal(err)
	}

	type target struct {
		name string
		run  func() (time.Duration, error)
	}
	targets := []target{
		{"Apache Kafka, defaults (no fsync before ack)", func() (time.Duration, error) { return produce(*kafkaAddr, "bench", values) }},
		{"Apache Kafka, flush.messages=1 (fsync before ack)", func() (time.Duration, error) { return produce(*kafkaAddr, "bench_fsync", values) }},
		{"Lambdaflow Kafka listener (fsync before ack)", func() (time.Duration, error) { return produce(lf.kafka, "bench", values) }},
		{"Lambdaflow HTTP ingest, same records (fsync before ack)", func() (time.Duration, error) { return post(lf.http, values, *clients, *body) }},
	}
	rates := make([][]float64, len(targets))
	var bytesTotal int
	for _, v := range values {
		bytesTotal += len(v.value)
	}
	for r := range *rounds {
		for i, t := range targets {
			d, err := t.run()
			if err != nil {
				log.Fatalf("round %d, %s: %v", r+1, t.name, err)
			}
			rate := float64(len(values)) / d.Seconds()
			rates[i] = append(rates[i], rate)
			log.Printf("round %d: %-58s %9.0f records/s", r+1, t.name, rate)
		}
	}
	fmt.Printf("\n%d records of %d bytes (JSON events), %d rounds interleaved, medians:\n\n", len(values), bytesTotal/len(values), *rounds)
	fmt.Println("| target | records/s | MB/s | vs Kafka defaults |")
	fmt.Println("|---|---|---|---|")
	base := median(rates[0])
	for i, t := range targets {
		m := median(rates[i])
		fmt.Printf("| %s | %.0f | %.1f | %.2f× |\n", t.name, m, m*float64(bytesTotal)/float64(len(values))/1e6, m/base)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

type record struct {
	key, value []byte
}

// makeValues builds n events of the benchmark topic's schema (about 110
// bytes each), keyed by host.
func makeValues(n int) []record {
	out := make([]record, n)
	regions := []string{"eu", "us", "ap"}
	for i := range out {
		host := fmt.Sprintf("web-%03d", i%500)
		out[i] = record{key: []byte(host), value: fmt.Appendf(nil, `{"ts":"2026-01-02T15:%02d:%02dZ","host":"%s","region":"%s","cpu":%d.%02d,"bytes":%d}`,
			i/60%60, i%60, host, regions[i%3], i%100, i%97, 1000+i%5000)}
	}
	return out
}

// produce sends every record with one franz-go producer (acks=all,
// idempotent, its default batching) and returns the time until the last
// acknowledgement.
func produce(addr, topic string, values []record) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	// Metadata and the producer id first, outside the measurement.
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: values[0].key, Value: values[0].value}).FirstErr(); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for _, v := range values {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: v.key, Value: v.value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return d, nil
}

// post sends the same records as NDJSON bodies of perBody events from
// clients concurrent clients.
func post(base string, values []record, clients, perBody int) (time.Duration, error) {
	var bodies [][]byte
	for i := 0; i < len(values); i += perBody {
		var b bytes.Buffer
		for _, v := range values[i:min(i+perBody, len(values))] {
			b.Write(v.value)
			b.WriteByte('\n')
		}
		bodies = append(bodies, b.Bytes())
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	url := base + "/v1/topics/bench/events"
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				resp, err := hc.Post(url, "application/x-ndjson", bytes.NewReader(bodies[i]))
				if err != nil {
					failed.Store(err)
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Errorf("POST: %d %s", resp.StatusCode, msg))
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return 0, err
	}
	return d, nil
}

// createTopics makes the benchmark's topics on the Kafka broker: bench
// with the broker's defaults, bench_fsync with flush.messages=1.
func createTopics(addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	for _, name := range []string{"bench", "bench_fsync"} {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = name, 4, 1
		if name == "bench_fsync" {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			v := "1"
			c.Name, c.Value = "flush.messages", &v
			t.Configs = append(t.Configs, c)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

type lambdaflow struct {
	cmd         *exec.Cmd
	dir         string
	kafka, http string
}

const pipeline = `version: 1
name: bench
data_dir: %s
http: { listen: "%s" }
kafka: { listen: "%s" }
topics:
  - name: bench
    partitions: 4
    key: host
    time: ts
    schema: { ts: timestamp, host: string, region: string, cpu: double, bytes: long }
`

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startLambdaflow runs the binary with the ingest role and waits until
// both listeners answer.
func startLambdaflow(binary string) (*lambdaflow, error) {
	dir, err := os.MkdirTemp("", "lambdaflow-bench-kafka-")
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	kafkaAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, pipeline, filepath.Join(dir, "data"), httpAddr, kafkaAddr), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "lambdaflow.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "run", "-c", file, "--role", "ingest", "--log-format", "json", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (make build first)", binary, err)
	}
	lf := &lambdaflow{cmd: cmd, dir: dir, kafka: kafkaAddr, http: "http://" + httpAddr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(lf.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.Dial("tcp", kafkaAddr); err == nil {
					c.Close()
					return lf, nil
				}
			}
		}
		if time.Now().After(deadline) {
			lf.stop()
			return nil, fmt.Errorf("lambdaflow not ready after 60 s; see %s", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (lf *lambdaflow) stop() {
	_ = lf.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { lf.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		lf.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(lf.dir)
}
