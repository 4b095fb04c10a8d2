package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
)

// groupBucket is the key-value bucket (<prefix>_kafka_groups) that holds
// every group's state and the producer-id counter.
const groupBucket = "kafka_groups"

// Session timeouts accepted from clients, as Kafka's
// group.min/max.session.timeout.ms (with a lower minimum, so that tests
// and fast failover can use short sessions).
const (
	minSession = 1000
	maxSession = 30 * 60 * 1000
)

// ConsumerName is the name under which a Kafka consumer group's committed
// positions are kept and shown in lag ("kafka.<group>").
func ConsumerName(group string) string { return "kafka." + group }

// coordinator runs consumer groups on the shared group-state bucket.
type coordinator struct {
	s    *Server
	mu   sync.Mutex
	st   *broker.States
	errs int
}

func newCoordinator(s *Server) *coordinator { return &coordinator{s: s} }

func (co *coordinator) store(ctx context.Context) (*broker.States, error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.st != nil {
		return co.st, nil
	}
	st, err := co.s.log.States(ctx, groupBucket)
	if err != nil {
		return nil, err
	}
	co.st = st
	return st, nil
}

func groupKey(group string) string { return broker.NameKey("g", group) }

// update applies the clock and then fn to the group's state and stores the
// result with compare-and-set when either changed it, retrying on
// conflicts. fn reports whether it changed g; its error is returned after
// the store (a Kafka error code for the caller, codeError, usually comes
// with no change). It returns the state as stored and its revision.
func (co *coordinator) update(ctx context.Context, group string, fn func(g *groupState, now int64) (bool, error)) (*groupState, uint64, error) {
	st, err := co.store(ctx)
	if err != nil {
		return nil, 0, err
	}
	var g *groupState
	var gen int32
	v, rev, err := st.Update(ctx, groupKey(group), func(old []byte) ([]byte, bool, error) {
		g = newGroup()
		if old != nil {
			if err := json.Unmarshal(old, g); err != nil {
				return nil, false, fmt.Errorf("kafka: group %q: stored state: %w", group, err)
			}
		}
		gen = g.Generation
		now := co.s.now().UnixMicro()
		changed := g.expire(now)
		fchanged, ferr := fn(g, now)
		if !changed && !fchanged {
			return nil, false, ferr
		}
		b, err := json.Marshal(g)
		if err != nil {
			return nil, false, err
		}
		return b, true, ferr
	})
	if g == nil {
		return nil, 0, err // fn never ran: the bucket is out of reach
	}
	if v != nil && g.Generation != gen {
		co.s.metrics.rebalances.Inc()
	}
	return g, rev, err
}

// read returns the group's state with the clock applied (and stored, when
// that changed it: a rebalance past its deadline completes on a read).
func (co *coordinator) read(ctx context.Context, group string) (*groupState, uint64, error) {
	return co.update(ctx, group, func(*groupState, int64) (bool, error) { return false, nil })
}

// wait blocks until the group's stored state changes from revision rev,
// or until, whichever comes first.
func (co *coordinator) wait(ctx context.Context, group string, rev uint64, until time.Time) error {
	st, err := co.store(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	err = st.Wait(wctx, groupKey(group), rev)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil
	}
	return err
}

// listGroups returns every stored group's name.
func (co *coordinator) listGroups(ctx context.Context) ([]string, error) {
	st, err := co.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Names(ctx, "g")
}
