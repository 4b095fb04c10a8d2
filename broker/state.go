package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict is returned (wrapped) by States.Set and States.Delete when
// the record changed since the revision the caller read: another process
// (or goroutine) won the compare-and-set. Read again and retry.
var ErrConflict = errors.New("broker: state changed concurrently")

// States is a bucket of small records that several processes update with
// compare-and-set: coordination state such as consumer-group membership,
// which must survive a restart and be consistent across processes. Each
// key has one revision; revisions grow with every change of the bucket.
// Safe for concurrent use.
type States struct {
	b      *Broker
	kv     jetstream.KeyValue
	bucket string
}

// States opens the bucket <prefix>_<bucket> (file storage, the configured
// replicas), creating it on first use.
func (b *Broker) States(ctx context.Context, bucket string) (*States, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	kv, err := b.keyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return &States{b: b, kv: kv, bucket: bucket}, nil
}

// Get returns key's value and revision; rev is 0 and value nil when the key
// does not exist (or was deleted).
func (s *States) Get(ctx context.Context, key string) (value []byte, rev uint64, err error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("broker: %s: get %s: %w", s.bucket, key, unavailable(err))
	}
	return e.Value(), e.Revision(), nil
}

// Set stores value under key if the key is still at revision rev (0: the
// key must not exist), and returns the new revision. ErrConflict when it
// was not.
func (s *States) Set(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	var (
		n   uint64
		err error
	)
	if rev == 0 {
		n, err = s.kv.Create(ctx, key, value)
	} else {
		n, err = s.kv.Update(ctx, key, value, rev)
	}
	if err != nil {
		if conflict(err) {
			return 0, fmt.Errorf("%w: %s %s", ErrConflict, s.bucket, key)
		}
		return 0, fmt.Errorf("broker: %s: set %s: %w", s.bucket, key, unavailable(err))
	}
	return n, nil
}

// Delete removes key if it is still at revision rev; ErrConflict when not.
func (s *States) Delete(ctx context.Context, key string, rev uint64) error {
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil {
		if conflict(err) {
			return fmt.Errorf("%w: %s %s", ErrConflict, s.bucket, key)
		}
		return fmt.Errorf("broker: %s: delete %s: %w", s.bucket, key, unavailable(err))
	}
	return nil
}

// NameKey is the key of the record of name (any string) among the records
// of one kind: "<kind>.<name, base64url without padding>", a valid key
// whatever name holds.
func NameKey(kind, name string) string {
	return kind + "." + base64.RawURLEncoding.EncodeToString([]byte(name))
}

// Names returns the names of the records of kind (keys made by NameKey),
// sorted.
func (s *States) Names(ctx context.Context, kind string) ([]string, error) {
	keys, err := s.Keys(ctx, kind+".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, kind+".")); err == nil {
			out = append(out, string(b))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Keys returns the keys that start with prefix, in no particular order.
func (s *States) Keys(ctx context.Context, prefix string) ([]string, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: %s: list keys: %w", s.bucket, unavailable(err))
	}
	defer lister.Stop()
	var out []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Wait returns when key is no longer at revision rev (it changed, was
// created or deleted) or when ctx is done (then ctx.Err()). It sees changes
// made by any process.
func (s *States) Wait(ctx context.Context, key string, rev uint64) error {
	w, err := s.kv.Watch(ctx, key, jetstream.MetaOnly())
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("broker: %s: watch %s: %w", s.bucket, key, unavailable(err))
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%w: %s: watch of %s ended", ErrUnavailable, s.bucket, key)
			}
			if e == nil {
				// The current value has been delivered; a missing key
				// delivers nothing before this marker.
				if rev != 0 {
					if _, cur, err := s.Get(ctx, key); err != nil || cur != rev {
						return err
					}
				}
				continue
			}
			gone := e.Operation() != jetstream.KeyValuePut
			if gone && rev == 0 {
				continue // still absent, as the caller saw it
			}
			if gone || e.Revision() != rev {
				return nil
			}
		}
	}
}

func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		c := je.APIError().ErrorCode
		return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// maxConflicts bounds Update's retries; past it the bucket is too
// contended to make progress and the error says so.
const maxConflicts = 100

// Update reads key and calls fn with its value (nil when absent); when fn
// reports a change it stores fn's new value with compare-and-set, and on a
// conflict (another writer got there first) reads again and calls fn
// again. It returns the value now stored and its revision, and fn's error
// (after the store when fn changed something: an error may come with a
// change). fn must not have effects beyond its result: it may run more
// than once.
func (s *States) Update(ctx context.Context, key string, fn func(old []byte) (value []byte, changed bool, err error)) ([]byte, uint64, error) {
	for attempt := 0; ; attempt++ {
		old, rev, err := s.Get(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		value, changed, ferr := fn(old)
		if !changed {
			return old, rev, ferr
		}
		nrev, err := s.Set(ctx, key, value, rev)
		if err == nil {
			return value, nrev, ferr
		}
		if !errors.Is(err, ErrConflict) || attempt >= maxConflicts {
			return nil, 0, err
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
}
