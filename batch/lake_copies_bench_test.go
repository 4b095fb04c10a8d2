package batch

import (
	"context"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

// BenchmarkLakeCopies copies a topic's 400 files of 4 KiB from the
// development S3 server through a proxy that holds each request 10 ms (an
// object store's round trip), with fetchesAtOnce fetches at a time
// against 8 (the baseline), the two alternated, each into an empty
// directory. It reports each one's wall clock per topic and their ratio.
func BenchmarkLakeCopies(b *testing.B) {
	srv := s3test.Env(b)
	const files, size = 400, 4 << 10
	p := testPipeline(b.TempDir(), nil, nil)
	at := lakeAt{s3: &srv, url: srv.URL(srv.Prefix(b, "lake"))}
	at.apply(p)
	ctx := context.Background()
	st := openStore(b, p)
	adds := make([]fileEntry, files)
	h := t0.UnixMicro()
	for i := range adds {
		body := make([]byte, size)
		for j := range body {
			body[j] = byte(i*7 + j)
		}
		f := testFile(h+int64(i/8)*hourMicros, 0, int64(i), int64(i))
		f.Bytes, f.CRC32C = size, crc32.Checksum(body, castagnoli)
		if err := st.WriteFile(ctx, "metrics/"+f.Path, body, false); err != nil {
			b.Fatal(err)
		}
		adds[i] = f
	}
	if _, err := openMS(b, st).commit(ctx, func(*manifest) (*delta, error) {
		return &delta{Add: adds, Partitions: []partitionState{{Partition: 0, Next: files}}}, nil
	}); err != nil {
		b.Fatal(err)
	}
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	far := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(far.Close)
	farPipeline := *p
	farPipeline.Lake.Endpoint = far.URL
	farStore := openStore(b, &farPipeline)

	atOnce := [2]int{8, fetchesAtOnce}
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k, slots := range atOnce {
			c, err := OpenLakeCopies(p, filepath.Join(b.TempDir(), fmt.Sprint(k)), 1<<30, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			c.st, c.slot = farStore, make(chan struct{}, slots)
			start := time.Now()
			paths, release, err := c.Files(ctx, "metrics", time.Time{}, time.Time{})
			took[k] += time.Since(start)
			if err != nil || len(paths) != files {
				b.Fatalf("%d copies: %v", len(paths), err)
			}
			release()
			c.Close()
		}
		n++
	}
	b.ReportMetric(float64(took[0].Milliseconds())/float64(n), "ms/copy-8-at-once")
	b.ReportMetric(float64(took[1].Milliseconds())/float64(n), fmt.Sprintf("ms/copy-%d-at-once", fetchesAtOnce))
	b.ReportMetric(float64(took[0])/float64(took[1]), "ratio")
}
