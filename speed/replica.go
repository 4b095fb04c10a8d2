package speed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
)

// A process that serves queries shows every view whole, whichever process
// computes each partition: for a partition it does not own it runs a
// replica of the owner's stage 2 (merge.go) into its store. The replica
// starts from the owner's last checkpoint (the one its last commit names),
// shows the final rows still within retention from the view's topic, and
// applies the partials topic from the checkpoint's position on, exactly as
// the owner does, so that it shows the same open windows and finalises the
// same windows, without appending or checkpointing anything. When the owner
// removes partials the replica has not applied yet (it was too slow), the
// replica starts again from the owner's newer checkpoint.

// errBehind restarts a replica that fell behind the partials kept.
var errBehind = errors.New("speed: the replica fell behind the partial states kept")

// replicate runs the replica of partition part of view vs while this
// process does not compute that partition, until ctx is done.
func (s *Speed) replicate(ctx context.Context, vs *viewSpec, part int) error {
	// 100 ms doubling to 10 s, without jitter: the wait is for the log.
	backoff := retry.Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second}
	failures := 0
	for {
		owned, moved := s.slots.state(vs.view.Name, part)
		if owned {
			select {
			case <-ctx.Done():
				return nil
			case <-moved:
				continue
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		var watch sync.WaitGroup
		watch.Go(func() {
			select {
			case <-moved:
				cancel() // the partition moved here (or elsewhere): look again
			case <-stop:
			}
		})
		start := time.Now()
		err := s.replicaOnce(rctx, vs, part)
		close(stop)
		watch.Wait()
		moving := rctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case moving:
			continue
		case errors.Is(err, errBehind):
			s.logger.Info("speed: replica fell behind the partial states kept; starting again from the newest checkpoint", "view", vs.view.Name, "partition", part)
			continue
		}
		if time.Since(start) > time.Minute {
			failures = 0 // it ran for a while: a new failure, not the same one
		}
		failures++
		s.logger.Warn("speed: replica failed; starting it again", "view", vs.view.Name, "partition", part, "err", err, "in", backoff.Delay(failures))
		if backoff.Wait(ctx, failures) != nil {
			return nil
		}
	}
}

// replicaOnce follows partition part of view vs from the owner's last
// checkpoint until ctx is done or something fails.
func (s *Speed) replicaOnce(ctx context.Context, vs *viewSpec, part int) error {
	v := vs.view
	pt := s.p.PartialsTopic(v)
	m := s.viewMerger(ctx, vs)
	em := newEmitter(s.p, v, s.store)
	next := int64(0)
	// The partition's rows in the store are this replica's from its first
	// Flush on (handover.go).
	ho, err := s.handovers.take(ctx, v.Name, part)
	if err != nil {
		return err
	}
	defer ho.give()
	_, name, ok, err := s.log.CommittedCheckpoint(ctx, vs.consumer, pt.Name, part)
	if err != nil {
		return err
	}
	if ok && name != "" {
		data, found, err := s.log.LoadCheckpoint(ctx, s.bucket, name)
		if err != nil {
			return err
		}
		if !found {
			// Replaced by a newer one since the commit was read.
			return fmt.Errorf("speed: view %q partition %d: checkpoint %s gone; reading the commit again", v.Name, part, name)
		}
		h, err := decodePart(data, newPartialEngine(vs.plan), m)
		if err != nil {
			return fmt.Errorf("speed: view %q partition %d: checkpoint %s/%s: %w", v.Name, part, s.bucket, name, err)
		}
		if h.def != vs.def {
			// The owner recomputes the partition from the start; so does
			// the replica.
			m = s.viewMerger(ctx, vs)
		} else {
			next = h.partialsNext
			if err := showRetained(ctx, s.log, em, m.wm, part, h.retain, len(vs.plan.GroupBy()), len(vs.plan.Columns()), ho.retainedIDs()); err != nil {
				return err
			}
		}
	}
	rd, err := s.log.Read(ctx, pt.Name, part, next)
	if err != nil {
		return err
	}
	defer rd.Close()
	var out output
	flush := func() {
		m.Flush(s.now(), &out)
		em.emit(&out)
	}
	flush()
	ho.reconcile(m, &out, s.store, v.Name)
	// The reader runs on its own goroutine so that rows waiting for their
	// emit interval are shown on the tick when no partial state comes.
	rctx, stopReader := context.WithCancel(ctx)
	entries := make(chan broker.Entry, entryQueue)
	readErr := make(chan error, 1)
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			ent, err := rd.Next(rctx)
			switch {
			case rctx.Err() != nil:
				return
			case errors.Is(err, broker.ErrCorruptEntry), errors.Is(err, broker.ErrSchemaMismatch):
				continue
			case err != nil:
				readErr <- err
				return
			}
			select {
			case entries <- ent:
			case <-rctx.Done():
				return
			}
		}
	})
	defer func() {
		stopReader()
		reader.Wait()
	}()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		var ent broker.Entry
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-tick.C:
			flush()
			continue
		case ent = <-entries:
		}
		if ent.Offset > next {
			return errBehind
		}
		for i := range ent.Events {
			if ent.Offset+int64(i) < next {
				continue
			}
			if pr, ok := decodePartial(&ent.Events[i]); ok {
				if err := m.Apply(&pr); err != nil {
					s.logger.Error("speed: replica skips a partial state that cannot be read", "view", v.Name, "partition", part, "err", err)
				}
			}
		}
		next = max(next, ent.End())
		flush()
	}
}
