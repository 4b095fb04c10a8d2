package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
)

// Every process of the pipeline shares each view's batch result: after a
// run its owner (the process owning the view's batch, consumer
// "batch.<view>") writes it, as the view file it also keeps under
// data_dir, to the object store <prefix>_batch_<pipeline> of the log
// (object <view>). A process that takes the view over continues from it;
// a process that serves queries shows it (follow).

// ErrNotOwner is returned (wrapped) by Recompute in a process that does not
// run the view's batch: another process of the pipeline does.
var ErrNotOwner = errors.New("batch: the view's batch runs in another process")

// objects is what the shared results need of the log: *broker.Broker.
type objects interface {
	ObjectStore(ctx context.Context, bucket string) (*broker.ObjectStore, error)
}

// results is the shared store of view results.
type results struct {
	log    objects
	bucket string

	mu sync.Mutex
	os *broker.ObjectStore
}

func (r *results) store(ctx context.Context) (*broker.ObjectStore, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.os != nil {
		return r.os, nil
	}
	os, err := r.log.ObjectStore(ctx, r.bucket)
	if err != nil {
		return nil, err
	}
	r.os = os
	return os, nil
}

// load returns the shared view file of view and its version; nil data when
// there is none.
func (r *results) load(ctx context.Context, view string) ([]byte, string, error) {
	os, err := r.store(ctx)
	if err != nil {
		return nil, "", err
	}
	version, err := os.Version(ctx, view)
	if err != nil || version == "" {
		return nil, "", err
	}
	data, err := os.Get(ctx, view)
	if errors.Is(err, broker.ErrObjectNotFound) {
		return nil, "", nil
	}
	return data, version, err
}

// version returns the shared view file's version ("" when there is none).
func (r *results) version(ctx context.Context, view string) (string, error) {
	os, err := r.store(ctx)
	if err != nil {
		return "", err
	}
	return os.Version(ctx, view)
}

func (r *results) save(ctx context.Context, view string, data []byte) error {
	os, err := r.store(ctx)
	if err != nil {
		return err
	}
	return os.Put(ctx, view, data)
}

// takeOver is the run of view vj's batch while this process owns it: it
// continues from the shared result (newer than this process's own view
// file when another process ran the view meanwhile) and runs the view's
// schedule until ctx ends.
func (b *Batch) takeOver(ctx context.Context, vj *viewJob) error {
	select {
	case vj.sem <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	err := b.loadShared(ctx, vj)
	vj.owned.Store(true)
	<-vj.sem
	if err != nil {
		vj.owned.Store(false)
		return err
	}
	defer vj.owned.Store(false)
	b.logger.Info("batch: running the view's batch in this process", "view", vj.v.Name)
	if vj.sched == nil {
		<-ctx.Done()
		return nil
	}
	return b.schedule(ctx, vj)
}

// loadShared replaces vj's result by the shared one when there is one;
// the caller holds vj.sem.
func (b *Batch) loadShared(ctx context.Context, vj *viewJob) error {
	if b.shared == nil {
		return nil
	}
	data, _, err := b.shared.load(ctx, vj.v.Name)
	if err != nil || data == nil {
		return err
	}
	st, err := decodeViewFile(data, b.shared.bucket+"/"+vj.v.Name, vj.v, vj.topic)
	if err != nil {
		return err
	}
	if st.lakeVersion < vj.st.lakeVersion && vj.st.hasHorizon {
		return nil // this process's own file is newer (the shared write failed)
	}
	vj.st = st
	if st.hasHorizon {
		vj.published.Store(st.horizon)
		if b.store != nil {
			b.store.PutBatch(vj.v.Name, minTime, maxTime, st.horizon, st.sortedRows())
		}
	}
	return nil
}

// follow shows view vj's shared result in the store whenever it changes
// while another process owns the view's batch, until ctx ends.
func (b *Batch) follow(ctx context.Context, vj *viewJob) {
	// The poll interval doubling to 30 s while the log fails, without
	// jitter.
	backoff := retry.Backoff{Base: b.poll, Cap: 30 * time.Second}
	seen, failures := "", 0
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		if !vj.owned.Load() {
			v, err := b.followOnce(ctx, vj, seen)
			if err != nil && ctx.Err() == nil {
				failures++
				b.logger.Warn("batch: reading the view's shared result", "view", vj.v.Name, "err", err)
				if backoff.Wait(ctx, failures) != nil {
					return
				}
				continue
			}
			seen, failures = v, 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// followOnce loads the shared result if its version is not seen; it
// returns the version now shown.
func (b *Batch) followOnce(ctx context.Context, vj *viewJob, seen string) (string, error) {
	v, err := b.shared.version(ctx, vj.v.Name)
	if err != nil || v == "" || v == seen {
		return seen, err
	}
	data, v, err := b.shared.load(ctx, vj.v.Name)
	if err != nil || data == nil {
		return seen, err
	}
	st, err := decodeViewFile(data, b.shared.bucket+"/"+vj.v.Name, vj.v, vj.topic)
	if err != nil {
		return seen, err
	}
	if st.hasHorizon && !vj.owned.Load() {
		b.store.PutBatch(vj.v.Name, minTime, maxTime, st.horizon, st.sortedRows())
		vj.published.Store(st.horizon)
	}
	return v, nil
}

// awaitOwner waits briefly for this process to own view vj's batch (it
// takes it within a second of starting when it is the one to) and says
// which it is.
func (b *Batch) awaitOwner(vj *viewJob) error {
	if b.owner == nil {
		return nil
	}
	for deadline := time.Now().Add(3 * time.Second); ; {
		if vj.owned.Load() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (GET /v1/cluster shows which owns batch.%s): recompute there", ErrNotOwner, vj.v.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
