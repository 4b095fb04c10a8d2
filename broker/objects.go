package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrObjectNotFound is returned by ObjectStore.Get for a name that holds no
// object.
var ErrObjectNotFound = errors.New("broker: object not found")

// ObjectStore is a bucket of named objects in the log's JetStream: whole
// values of any size (checkpoints), replicated like the topics. It is safe
// for concurrent use. Other packages use it without knowing JetStream.
type ObjectStore struct {
	os     jetstream.ObjectStore
	bucket string
}

// Get returns the object's bytes; ErrObjectNotFound when there is none.
// Other errors wrap ErrUnavailable when they are transient.
func (s *ObjectStore) Get(ctx context.Context, name string) ([]byte, error) {
	data, err := s.os.GetBytes(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("%w: %s/%s", ErrObjectNotFound, s.bucket, name)
	case err != nil:
		return nil, fmt.Errorf("broker: get %s/%s: %w", s.bucket, name, unavailable(err))
	}
	return data, nil
}

// Put stores data under name, replacing the object there; errors wrap
// ErrUnavailable when they are transient. The store writes
// the chunks under a new id, then the metadata that points at them, and
// only then purges the old chunks, so a reader sees the old object or the
// new one, never a mix.
func (s *ObjectStore) Put(ctx context.Context, name string, data []byte) error {
	if _, err := s.os.PutBytes(ctx, name, data); err != nil {
		return fmt.Errorf("broker: put %s/%s: %w", s.bucket, name, unavailable(err))
	}
	return nil
}

// Delete removes the object name; a name that holds none is not an error.
func (s *ObjectStore) Delete(ctx context.Context, name string) error {
	err := s.os.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("broker: delete %s/%s: %w", s.bucket, name, unavailable(err))
	}
	return nil
}

// Version returns a token that changes whenever the object name is
// replaced (its digest), or "" when there is none: a cheap way to find out
// whether to read it again.
func (s *ObjectStore) Version(ctx context.Context, name string) (string, error) {
	info, err := s.os.GetInfo(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("broker: %s/%s: %w", s.bucket, name, unavailable(err))
	}
	return info.Digest, nil
}
