package lakestore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

// TestS3KeepsConnections: reads of 64 objects at once (as many as the
// batch layer fetches ahead) reuse their connections to a server that
// keeps them open, instead of dialling again for most requests; CloseIdle
// closes them. The dev server closes every connection after its answer,
// so the store talks to it through a proxy that keeps them, as cloud
// stores do.
func TestS3KeepsConnections(t *testing.T) {
	srv := s3test.Env(t)
	var dialled, open atomic.Int64
	proxy := httptest.NewUnstartedServer(devProxy(t, srv))
	proxy.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			dialled.Add(1)
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	proxy.Start()
	defer proxy.Close()

	ctx := context.Background()
	st, err := lakestore.Open(ctx, lakestore.Config{
		URL: srv.URL(srv.Prefix(t, "conns")), Endpoint: proxy.URL, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lakestore.CloseIdle(st)
	const n = 64
	for i := range n {
		if err := st.WriteFile(ctx, fmt.Sprintf("k/%02d", i), []byte{byte(i)}, true); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 4 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				b, err := st.ReadFile(ctx, fmt.Sprintf("k/%02d", i))
				if err == nil && (len(b) != 1 || b[0] != byte(i)) {
					err = fmt.Errorf("k/%02d holds %v", i, b)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	// 4 × 64 reads after 64 writes and a listing: at most one connection
	// per request in flight at once.
	if d := dialled.Load(); d > n+1 {
		t.Fatalf("%d connections dialled for %d requests at most %d at a time, want at most %d", d, 4*n+n+1, n, n+1)
	}
	lakestore.CloseIdle(st)
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if o := open.Load(); o != 0 {
		t.Fatalf("%d connections open after CloseIdle", o)
	}
}

// devProxy is a reverse proxy to the dev S3 server. Its own connections
// to the server are its business: each closes after its request, and
// any left idle when the test ends.
func devProxy(t testing.TB, srv s3test.Server) *httputil.ReverseProxy {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rt := &http.Transport{DisableKeepAlives: true}
	rp.Transport = rt
	t.Cleanup(rt.CloseIdleConnections)
	return rp
}
