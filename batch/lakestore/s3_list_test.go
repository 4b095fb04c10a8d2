package lakestore_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

// BenchmarkS3List lists a lake-shaped prefix (20,000 objects in 100
// period directories of 200) on the development S3 server one request
// after another, as the S3 store did, and wide, as its List does now (a
// listing by "/", then the directories side by side), the two alternated.
// It does so straight to the server, which shares this machine's cores,
// and through a proxy that holds every request 10 ms (a server across a
// network). It reports each one's milliseconds per listing and their
// ratio (one by one / wide: above 1, wide is faster).
func BenchmarkS3List(b *testing.B) {
	const dirs, per = 100, 200
	srv := s3test.Env(b)
	ctx := context.Background()
	url := srv.URL(srv.Prefix(b, "list"))
	open := func(endpoint string) lakestore.Store {
		st, err := lakestore.Open(ctx, lakestore.Config{URL: url, Endpoint: endpoint, Region: srv.Region,
			AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lakestore.CloseIdle(st) })
		return st
	}
	direct := open(srv.Endpoint)
	var g errgroup.Group
	g.SetLimit(32)
	for d := range dirs {
		for f := range per {
			g.Go(func() error {
				return direct.WriteFile(ctx, fmt.Sprintf("lake/dt=%03d/hour=00/p0-%d.parquet", d, f), []byte("PAR1"), true)
			})
		}
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	proxy := devProxy(b, srv)
	far := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(far.Close)
	for _, c := range []struct {
		name string
		st   lakestore.Store
	}{{"direct", direct}, {"rtt=10ms", open(far.URL)}} {
		b.Run(c.name, func(b *testing.B) {
			lists := [2]func() ([]lakestore.Entry, error){
				func() ([]lakestore.Entry, error) { return lakestore.ListOneByOne(ctx, c.st, "lake/") },
				func() ([]lakestore.Entry, error) { return c.st.List(ctx, "lake/", "") },
			}
			var took [2]time.Duration
			n := 0
			for b.Loop() {
				for k, list := range lists {
					start := time.Now()
					es, err := list()
					took[k] += time.Since(start)
					if err != nil || len(es) != dirs*per {
						b.Fatalf("listed %d objects: %v", len(es), err)
					}
				}
				n++
			}
			b.ReportMetric(float64(took[0].Milliseconds())/float64(n), "ms/list-one-by-one")
			b.ReportMetric(float64(took[1].Milliseconds())/float64(n), "ms/list-wide")
			b.ReportMetric(float64(took[0])/float64(took[1]), "ratio")
		})
	}
}
