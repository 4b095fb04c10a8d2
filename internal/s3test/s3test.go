// Package s3test gives tests the S3-compatible object store that
// deploy/dev/s3.sh runs (versitygw over a local directory): where it is, a
// client for it, and a key prefix of the test's own that is emptied when the
// test ends. It is test support only; nothing outside tests imports it.
//
// Usage:
//
//	srv := s3test.Env(t)             // skips (or fails under make test) without the server
//	c := srv.Client()                // *s3.Client: path-style, the server's keys and region
//	prefix := srv.Prefix(t, "lake")  // "lake/<random>/", deleted at the end of the test
//	c.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String(prefix + "a"), …})
//
// Tests share one bucket (LF_TEST_S3_BUCKET), so a test writes only under
// its own prefix, or makes a bucket of its own with NewBucket.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// Server is an S3-compatible endpoint and the credentials of its root
// account, as `deploy/dev/services.sh env` prints them.
type Server struct {
	Endpoint  string // LF_TEST_S3_ENDPOINT, e.g. http://127.0.0.1:57070
	Region    string // LF_TEST_S3_REGION (us-east-1)
	Bucket    string // LF_TEST_S3_BUCKET, created by the script
	AccessKey string // LF_TEST_S3_ACCESS_KEY
	SecretKey string // LF_TEST_S3_SECRET_KEY
}

// Env returns the server named by the LF_TEST_S3_* variables. Without them
// the test is skipped with a message naming the script that starts the
// server, or fails under make test and CI.
func Env(t testing.TB) Server {
	t.Helper()
	s := Server{
		Endpoint:  os.Getenv("LF_TEST_S3_ENDPOINT"),
		Region:    os.Getenv("LF_TEST_S3_REGION"),
		Bucket:    os.Getenv("LF_TEST_S3_BUCKET"),
		AccessKey: os.Getenv("LF_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("LF_TEST_S3_SECRET_KEY"),
	}
	if s.Endpoint == "" || s.Bucket == "" || s.AccessKey == "" || s.SecretKey == "" {
		testenv.Missing(t, "LF_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY and _SECRET_KEY must be set: start the S3 server "+
			"with `deploy/dev/services.sh up s3` and `eval \"$(deploy/dev/services.sh env)\"`")
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	return s
}

// Client returns an S3 client for the server: path-style addressing (the
// server has no per-bucket host names), its region and root keys, and the
// SDK's retries. It is safe for concurrent use.
func (s Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Prefix returns a key prefix no other test uses, "<name>/<12 hex digits>/",
// and deletes every object under it when t ends (passed or failed).
func (s Server) Prefix(t testing.TB, name string) string {
	t.Helper()
	prefix := name + "/" + randomHex() + "/"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.deleteAll(ctx, s.Bucket, prefix); err != nil {
			t.Errorf("s3test: emptying s3://%s/%s: %v", s.Bucket, prefix, err)
		}
	})
	return prefix
}

// NewBucket creates a bucket no other test uses, named after prefix (3–24
// lowercase letters, digits or '-') and 12 random hex digits, and deletes
// it with its objects and unfinished multipart uploads when t ends.
func (s Server) NewBucket(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "-" + randomHex()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("s3test: creating bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.deleteAll(ctx, name, "")
		if err == nil {
			_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name})
		}
		if err != nil {
			t.Errorf("s3test: deleting bucket %s: %v", name, err)
		}
	})
	return name
}

// deleteAll deletes every object under prefix in bucket and aborts the
// multipart uploads begun there.
func (s Server) deleteAll(ctx context.Context, bucket, prefix string) error {
	c := s.Client()
	uploads, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		return fmt.Errorf("listing multipart uploads: %w", err)
	}
	for _, u := range uploads.Uploads {
		if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId}); err != nil && !IsNotFound(err) {
			return fmt.Errorf("aborting upload of %s: %w", aws.ToString(u.Key), err)
		}
	}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing: %w", err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("deleting: %w", err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("deleting %s: %s %s (and %d more)", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return nil
}

// URL returns the s3:// URL of key (or prefix) in the server's bucket.
func (s Server) URL(key string) string {
	return "s3://" + s.Bucket + "/" + strings.TrimPrefix(key, "/")
}

// IsPreconditionFailed reports whether err is the server's answer to a
// conditional write whose condition did not hold: 412 PreconditionFailed
// (If-None-Match: * on an existing key, If-Match with another ETag), or 409
// ConditionalRequestConflict, which S3 answers when a concurrent write
// decided first. A writer that gets either must re-read and retry.
func IsPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	return false
}

// IsNotFound reports whether err says the key, upload or bucket does not
// exist. It goes by the error code, since the SDK types the error only for
// the operations whose model lists it (PutObject's does not).
func IsNotFound(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchBucket":
		return true
	}
	return false
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
