// Package lakestore is where the lake lives: a local directory or a prefix
// of an S3-compatible bucket, behind one small interface of objects named
// by slash-separated keys. It owns what a lake needs of its storage and the
// two ways of providing it: writes that become visible whole and at once,
// create-only writes (the commit point of the lake's manifest: of several
// writers racing to create one key, exactly one succeeds), reads at any
// offset, listing by prefix, deletion, renaming and copying.
//
// It knows nothing of Parquet, manifests or topics (package batch does),
// and never holds more than one object's bytes in memory: uploads larger
// than a few MiB are staged in an unlinked temporary file. On object
// storage it keeps up to 64 connections open between requests, for
// readers that fetch many objects at once; CloseIdle releases them.
package lakestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// ErrExists is returned (wrapped) by a create-only write whose key already
// exists: another writer created it first.
var ErrExists = errors.New("lakestore: object exists")

// Store is a lake's storage. Keys are relative to the store's root, use
// forward slashes, and never start with a slash or contain "..". Methods
// are safe for concurrent use; ctx bounds every request. A missing key is
// reported as an error wrapping fs.ErrNotExist.
type Store interface {
	// Create starts a new object at key. Nothing is visible at key before
	// the writer's Commit; Abort (or a crash) leaves nothing behind at key.
	Create(ctx context.Context, key string) (Writer, error)
	// Open opens an object for reading at any offset.
	Open(ctx context.Context, key string) (Object, error)
	// ReadFile returns a whole object.
	ReadFile(ctx context.Context, key string) ([]byte, error)
	// WriteFile writes a whole object; exclusive makes it create-only
	// (ErrExists when the key exists).
	WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error
	// List returns the objects whose keys start with prefix and sort after
	// after (all of them when after is empty), in key order.
	List(ctx context.Context, prefix, after string) ([]Entry, error)
	// Delete removes objects; a key that does not exist counts as deleted.
	Delete(ctx context.Context, keys ...string) error
	// Rename moves an object to another key, replacing what is there. On a
	// local directory it is atomic; on object storage it is a copy then a
	// delete, so after a crash both keys may exist.
	Rename(ctx context.Context, from, to string) error
	// Copy makes the object at from readable at to as well, replacing what
	// is there, and keeps from. Objects are never changed in place, so a
	// local directory links the file (no bytes copied) and object storage
	// copies it server-side: either way the bytes do not pass through
	// this process.
	Copy(ctx context.Context, from, to string) error
	// Unfinished lists the writes under prefix that were begun and never
	// committed nor aborted: left by a crash, or still going on in another
	// process (the caller tells which by the key). Committed objects are
	// not among them, and List does not show these.
	Unfinished(ctx context.Context, prefix string) ([]Pending, error)
	// Discard removes an unfinished write.
	Discard(ctx context.Context, p Pending) error
	// String names the root for messages: a directory or s3://bucket/prefix/.
	String() string
}

// Pending is an unfinished write: Key is the key it was to create.
type Pending struct {
	Key string
	id  string // the temporary file, or the multipart upload
}

// Writer writes a new object. It is not for concurrent use.
type Writer interface {
	io.Writer
	// Commit makes the object visible at its key durably and returns its
	// size. With exclusive, it fails with ErrExists if the key exists (and
	// nothing changes); otherwise it replaces what is there. After Commit
	// or Abort the writer is done.
	Commit(ctx context.Context, exclusive bool) (int64, error)
	// Abort drops the object. It is safe to call after Commit.
	Abort()
}

// Object is an object opened for reading.
type Object interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// Entry is an object found by List.
type Entry struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Config says where a lake lives: Dir, or URL and the keys of object
// storage.
type Config struct {
	// Dir is a local directory (used when URL is empty).
	Dir string
	// URL is s3://bucket/prefix for S3-compatible object storage.
	URL string
	// Endpoint is the server's base URL (http://host:port) for servers other
	// than AWS S3; empty means AWS.
	Endpoint string
	// Region is the bucket's region; empty means us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey are static credentials; when both are
	// empty the AWS SDK's default chain is used (environment, shared files,
	// web identity, instance roles).
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses buckets as endpoint/bucket/key rather than
	// bucket.endpoint/key (most servers other than AWS need it).
	PathStyle bool
	// SpillDir is where uploads larger than a few MiB are staged (an
	// unlinked temporary file); empty means the system's temporary directory.
	SpillDir string
}

// Open returns the store cfg describes. For object storage it checks the
// bucket can be reached (one listing), so that a wrong endpoint, bucket or
// key fails at start with a message naming it.
func Open(ctx context.Context, cfg Config) (Store, error) {
	if cfg.URL == "" {
		if cfg.Dir == "" {
			return nil, errors.New("lakestore: neither a directory nor a URL")
		}
		return NewDir(cfg.Dir)
	}
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	s, err := newS3(ctx, cfg, bucket, prefix)
	if err != nil {
		return nil, err
	}
	if _, err := s.list(ctx, "", "", 1); err != nil {
		return nil, fmt.Errorf("lakestore: cannot list %s: %w", s, err)
	}
	return s, nil
}

// CloseIdle closes the network connections st keeps open between
// requests, if it has any: what the owner of a store calls when done with
// it (each such connection holds two goroutines until the server closes
// it). The store stays usable: a later request dials again.
func CloseIdle(st Store) {
	if c, ok := st.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// ParseURL splits s3://bucket/prefix into the bucket and the prefix (empty,
// or ending in a slash).
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("lakestore: url %q: %w", raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("lakestore: url %q: want s3://bucket/prefix", raw)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return "", "", fmt.Errorf("lakestore: url %q: %w", raw, err)
		}
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// checkKey refuses keys that could leave the root.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("bad key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("bad key %q", key)
		}
	}
	return nil
}
