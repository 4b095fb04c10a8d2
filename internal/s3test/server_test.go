package s3test_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lambdaflow/lambdaflow/internal/s3test"
)

// These tests check that the development S3 server does what a lake writer
// needs, through the client the project uses: if one fails after an upgrade
// of the server, the lake's assumptions no longer hold.

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, c *s3.Client, bucket, key string, body []byte) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(ctxT(t), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	return out
}

func get(t *testing.T, c *s3.Client, bucket, key, rng string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := c.GetObject(ctxT(t), in)
	if err != nil {
		t.Fatalf("GetObject %s %s: %v", key, rng, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b, out
}

// pattern returns n bytes that differ at every offset modulo 251, so a
// range read from the wrong place shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestPutGetRanges(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	key := srv.Prefix(t, "ranges") + "dt=2026-01-02/hour=15/0-999.parquet"
	body := pattern(1 << 20)
	p := put(t, c, srv.Bucket, key, body)
	if aws.ToString(p.ETag) == "" {
		t.Fatal("PutObject returned no ETag")
	}
	head, err := c.HeadObject(ctxT(t), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ETag) != aws.ToString(p.ETag) {
		t.Fatalf("HeadObject: length %d ETag %s, want %d %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), len(body), aws.ToString(p.ETag))
	}
	for _, tc := range []struct {
		rng        string
		start, end int // body[start:end]
	}{
		{"bytes=0-9", 0, 10},
		{"bytes=1000-1999", 1000, 2000},
		{"bytes=-8", len(body) - 8, len(body)}, // a Parquet footer read
		{"bytes=1048000-", 1048000, len(body)},
	} {
		got, out := get(t, c, srv.Bucket, key, tc.rng)
		if !bytes.Equal(got, body[tc.start:tc.end]) {
			t.Errorf("range %s: %d bytes, not body[%d:%d]", tc.rng, len(got), tc.start, tc.end)
		}
		want := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end-1, len(body))
		if aws.ToString(out.ContentRange) != want {
			t.Errorf("range %s: Content-Range %q, want %q", tc.rng, aws.ToString(out.ContentRange), want)
		}
	}
	whole, _ := get(t, c, srv.Bucket, key, "")
	if !bytes.Equal(whole, body) {
		t.Fatalf("GetObject returned %d bytes that differ from the %d written", len(whole), len(body))
	}
}

func TestListV2PagesAndDelimiter(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	prefix := srv.Prefix(t, "list")
	var want []string
	for h := range 3 {
		for f := range 9 {
			k := fmt.Sprintf("%smetrics/dt=2026-01-02/hour=%02d/%06d-%06d.parquet", prefix, h, f*100, f*100+99)
			put(t, c, srv.Bucket, k, []byte(k))
			want = append(want, k)
		}
	}
	slices.Sort(want)
	var got []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &srv.Bucket, Prefix: &prefix, MaxKeys: aws.Int32(10)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			got = append(got, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("ListObjectsV2 in pages of 10: %d keys in %d pages, want the %d written in 3 pages, in order:\n%v", len(got), pages, len(want), got)
	}
	out, err := c.ListObjectsV2(ctxT(t), &s3.ListObjectsV2Input{Bucket: &srv.Bucket, Prefix: aws.String(prefix + "metrics/dt=2026-01-02/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, cp := range out.CommonPrefixes {
		dirs = append(dirs, strings.TrimPrefix(aws.ToString(cp.Prefix), prefix))
	}
	wantDirs := []string{"metrics/dt=2026-01-02/hour=00/", "metrics/dt=2026-01-02/hour=01/", "metrics/dt=2026-01-02/hour=02/"}
	if !slices.Equal(dirs, wantDirs) || len(out.Contents) != 0 {
		t.Fatalf("delimiter listing: prefixes %v and %d objects, want %v and none", dirs, len(out.Contents), wantDirs)
	}
}

func TestDelete(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	prefix := srv.Prefix(t, "delete")
	for i := range 5 {
		put(t, c, srv.Bucket, fmt.Sprintf("%s%d", prefix, i), []byte{byte(i)})
	}
	one := prefix + "0"
	if _, err := c.DeleteObject(ctxT(t), &s3.DeleteObjectInput{Bucket: &srv.Bucket, Key: &one}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetObject(ctxT(t), &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &one}); !s3test.IsNotFound(err) {
		t.Fatalf("GetObject after DeleteObject: %v, want NoSuchKey", err)
	}
	ids := []types.ObjectIdentifier{{Key: aws.String(prefix + "1")}, {Key: aws.String(prefix + "2")}, {Key: aws.String(prefix + "missing")}}
	out, err := c.DeleteObjects(ctxT(t), &s3.DeleteObjectsInput{Bucket: &srv.Bucket, Delete: &types.Delete{Objects: ids}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 0 || len(out.Deleted) != 3 {
		t.Fatalf("DeleteObjects: %d deleted, errors %v; want 3 deleted (a missing key counts as deleted)", len(out.Deleted), out.Errors)
	}
	list, err := c.ListObjectsV2(ctxT(t), &s3.ListObjectsV2Input{Bucket: &srv.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range list.Contents {
		left = append(left, strings.TrimPrefix(aws.ToString(o.Key), prefix))
	}
	if !slices.Equal(left, []string{"3", "4"}) {
		t.Fatalf("left after deletes: %v, want [3 4]", left)
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	prefix := srv.Prefix(t, "multipart")
	key := prefix + "big.parquet"
	parts := [][]byte{pattern(5 << 20), bytes.Repeat([]byte("b"), 5<<20), []byte("tail")}
	cr, err := c.CreateMultipartUpload(ctxT(t), &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.CompletedPart
	for i, p := range parts {
		n := int32(i + 1)
		up, err := c.UploadPart(ctxT(t), &s3.UploadPartInput{Bucket: &srv.Bucket, Key: &key, UploadId: cr.UploadId, PartNumber: &n, Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", n, err)
		}
		done = append(done, types.CompletedPart{PartNumber: &n, ETag: up.ETag})
	}
	// Nothing is visible before the upload completes.
	if _, err := c.HeadObject(ctxT(t), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &key}); !s3test.IsNotFound(err) {
		t.Fatalf("HeadObject before CompleteMultipartUpload: %v, want not found", err)
	}
	comp, err := c.CompleteMultipartUpload(ctxT(t), &s3.CompleteMultipartUploadInput{Bucket: &srv.Bucket, Key: &key, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.Trim(aws.ToString(comp.ETag), `"`), "-3") {
		t.Errorf("multipart ETag %s does not end in -3", aws.ToString(comp.ETag))
	}
	got, _ := get(t, c, srv.Bucket, key, "")
	if sha256.Sum256(got) != sha256.Sum256(bytes.Join(parts, nil)) {
		t.Fatalf("the completed object (%d bytes) is not the parts joined", len(got))
	}

	// An aborted upload leaves no object and no upload behind.
	aborted := prefix + "aborted"
	ab, err := c.CreateMultipartUpload(ctxT(t), &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &aborted})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctxT(t), &s3.UploadPartInput{Bucket: &srv.Bucket, Key: &aborted, UploadId: ab.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(parts[2])}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AbortMultipartUpload(ctxT(t), &s3.AbortMultipartUploadInput{Bucket: &srv.Bucket, Key: &aborted, UploadId: ab.UploadId}); err != nil {
		t.Fatal(err)
	}
	ups, err := c.ListMultipartUploads(ctxT(t), &s3.ListMultipartUploadsInput{Bucket: &srv.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left under the prefix, want 0", len(ups.Uploads))
	}
	if _, err := c.HeadObject(ctxT(t), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &aborted}); !s3test.IsNotFound(err) {
		t.Fatalf("HeadObject of an aborted upload: %v, want not found", err)
	}
}

// TestNewBucket checks the per-test bucket helper: empty at first, usable,
// and gone (with its objects) after the subtest.
func TestNewBucket(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	var name string
	t.Run("own", func(t *testing.T) {
		name = srv.NewBucket(t, "lf-newbucket")
		list, err := c.ListObjectsV2(ctxT(t), &s3.ListObjectsV2Input{Bucket: &name})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Contents) != 0 {
			t.Fatalf("a new bucket holds %d objects", len(list.Contents))
		}
		put(t, c, name, "x/y", []byte("z"))
	})
	_, err := c.HeadBucket(ctxT(t), &s3.HeadBucketInput{Bucket: &name})
	if !s3test.IsNotFound(err) {
		t.Fatalf("HeadBucket after the subtest: %v, want not found", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

// conditionalPut writes body to key with If-None-Match: * (ifMatch empty)
// or If-Match: ifMatch.
func conditionalPut(ctx context.Context, c *s3.Client, bucket, key, ifMatch string, body []byte) (*s3.PutObjectOutput, error) {
	in := &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = &ifMatch
	}
	return c.PutObject(ctx, in)
}

// TestConditionalWrites is the behaviour manifest commits rely on.
func TestConditionalWrites(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	prefix := srv.Prefix(t, "conditional")
	key := prefix + "_manifest/00000001.json"

	first, err := conditionalPut(ctxT(t), c, srv.Bucket, key, "", []byte("v1"))
	if err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	if _, err := conditionalPut(ctxT(t), c, srv.Bucket, key, "", []byte("v1'")); !s3test.IsPreconditionFailed(err) {
		t.Fatalf("If-None-Match: * on an existing key: %v, want 412 PreconditionFailed", err)
	}
	second, err := conditionalPut(ctxT(t), c, srv.Bucket, key, aws.ToString(first.ETag), []byte("v2"))
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if aws.ToString(second.ETag) == aws.ToString(first.ETag) {
		t.Fatalf("the ETag did not change on overwrite: %s", aws.ToString(second.ETag))
	}
	if _, err := conditionalPut(ctxT(t), c, srv.Bucket, key, aws.ToString(first.ETag), []byte("v3")); !s3test.IsPreconditionFailed(err) {
		t.Fatalf("If-Match with a stale ETag: %v, want 412 PreconditionFailed", err)
	}
	if got, _ := get(t, c, srv.Bucket, key, ""); string(got) != "v2" {
		t.Fatalf("after the refused writes the object holds %q, want v2", got)
	}
	// If-Match on a key that does not exist: S3 answers 404 NoSuchKey.
	missing := prefix + "_manifest/missing.json"
	if _, err := conditionalPut(ctxT(t), c, srv.Bucket, missing, `"0123456789abcdef0123456789abcdef"`, []byte("x")); !s3test.IsNotFound(err) && !s3test.IsPreconditionFailed(err) {
		t.Fatalf("If-Match on a missing key: %v, want 404 NoSuchKey or 412", err)
	}
	if _, err := c.HeadObject(ctxT(t), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &missing}); !s3test.IsNotFound(err) {
		t.Fatalf("the refused If-Match write created the key: %v", err)
	}

	// CompleteMultipartUpload takes the same condition.
	cr, err := c.CreateMultipartUpload(ctxT(t), &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.UploadPart(ctxT(t), &s3.UploadPartInput{Bucket: &srv.Bucket, Key: &key, UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("mp")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteMultipartUpload(ctxT(t), &s3.CompleteMultipartUploadInput{Bucket: &srv.Bucket, Key: &key, UploadId: cr.UploadId,
		IfNoneMatch:     aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up.ETag}}}})
	if !s3test.IsPreconditionFailed(err) {
		t.Fatalf("CompleteMultipartUpload with If-None-Match: * on an existing key: %v, want 412", err)
	}
	if got, _ := get(t, c, srv.Bucket, key, ""); string(got) != "v2" {
		t.Fatalf("after the refused multipart completion the object holds %q, want v2", got)
	}
}

// TestConditionalWritesRace checks that If-None-Match: * holds under
// contention, which is what makes it usable for commits by several writers:
// of writers racing to create a key, exactly one wins every round.
//
// If-Match is not checked here: versitygw evaluates it, but not atomically
// with the write, so two writers holding the same ETag can both succeed
// (docs/object-storage.md). Commits must not rely on it.
func TestConditionalWritesRace(t *testing.T) {
	srv := s3test.Env(t)
	c := srv.Client()
	prefix := srv.Prefix(t, "race")
	const writers, rounds = 6, 20
	for r := range rounds {
		key := fmt.Sprintf("%s%03d", prefix, r)
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				_, errs[w] = conditionalPut(ctxT(t), c, srv.Bucket, key, "", []byte(fmt.Sprintf("writer %d", w)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("%s: writers %d and %d both created it", key, winner, w)
			case err == nil:
				winner = w
			case !s3test.IsPreconditionFailed(err):
				t.Fatalf("%s: writer %d: %v, want success or a failed precondition", key, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer succeeded", key)
		}
		if got, _ := get(t, c, srv.Bucket, key, ""); string(got) != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("%s holds %q, but writer %d won", key, got, winner)
		}
	}
}
