package lakestore_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

// TestS3WithoutFlexibleChecksums: the store talks to a server that knows
// nothing of the checksum headers and aws-chunked uploads the AWS SDK
// adds by default since 2025 (older MinIO, Ceph, Cloudflare R2, Backblaze
// B2 and others refuse them): every operation the lake uses works through
// a proxy that refuses them as such a server does, and none of them sends
// one. Uploads are signed with their SHA-256 instead, which every
// S3-compatible server checks.
func TestS3WithoutFlexibleChecksums(t *testing.T) {
	srv := s3test.Env(t)
	var mu sync.Mutex
	var refused []string
	rp := devProxy(t, srv)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var bad []string
		for name, vs := range r.Header {
			lower := strings.ToLower(name)
			if strings.HasPrefix(lower, "x-amz-checksum-") || strings.HasPrefix(lower, "x-amz-sdk-checksum") || lower == "x-amz-trailer" {
				bad = append(bad, name)
			}
			if lower == "content-encoding" && strings.Contains(strings.Join(vs, ","), "aws-chunked") ||
				lower == "x-amz-content-sha256" && strings.HasPrefix(vs[0], "STREAMING-") {
				bad = append(bad, name+": "+vs[0])
			}
		}
		// A multi-object delete must say its body's MD5 (as S3 required
		// before 2025 and such servers still do).
		if _, del := r.URL.Query()["delete"]; del && r.Method == http.MethodPost && r.Header.Get("Content-MD5") == "" {
			bad = append(bad, "no Content-MD5")
		}
		if len(bad) > 0 {
			mu.Lock()
			refused = append(refused, r.Method+" "+r.URL.Path+": "+strings.Join(bad, ", "))
			mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<Error><Code>InvalidArgument</Code><Message>Unsupported header %s</Message></Error>", bad[0])
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	ctx := context.Background()
	st, err := lakestore.Open(ctx, lakestore.Config{
		URL: srv.URL(srv.Prefix(t, "compat")), Endpoint: proxy.URL, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true, SpillDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lakestore.CloseIdle(st)
	small := []byte("a lake file")
	if err := st.WriteFile(ctx, "t/a", small, true); err != nil {
		t.Fatalf("create-only PUT: %v", err)
	}
	if err := st.WriteFile(ctx, "t/b", small, false); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	// Past the part size: a multipart upload, create-only.
	big := pattern(40 << 20)
	w, err := st.Create(ctx, "t/big")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	if _, err := w.Commit(ctx, true); err != nil {
		t.Fatalf("multipart upload: %v", err)
	}
	if b, err := st.ReadFile(ctx, "t/a"); err != nil || !bytes.Equal(b, small) {
		t.Fatalf("GET: %q %v", b, err)
	}
	o, err := st.Open(ctx, "t/big")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if _, err := o.ReadAt(got, int64(len(big)-4096)); err != nil || !bytes.Equal(got, big[len(big)-4096:]) {
		t.Fatalf("large GET: %v", err)
	}
	o.Close()
	if es, err := st.List(ctx, "t/", ""); err != nil || len(es) != 3 {
		t.Fatalf("List: %v %v", keys(es), err)
	}
	if err := st.Rename(ctx, "t/b", "t/c"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if err := st.Copy(ctx, "t/c", "t/d"); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if err := st.Delete(ctx, "t/a", "t/c", "t/d", "t/big"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if es, err := st.List(ctx, "t/", ""); err != nil || len(es) != 0 {
		t.Fatalf("List after Delete: %v %v", keys(es), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) > 0 {
		t.Fatalf("requests with flexible-checksum headers: %v", refused)
	}
}
