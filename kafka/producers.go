package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The idempotent producer (KIP-98 without transactions): InitProducerId
// hands out ids unique across processes (a counter in the group-state
// bucket, advanced with compare-and-set); each batch carries the id, an
// epoch and the sequence number of its first record. Per producer and
// partition the listener remembers the last batches it appended, so that
// a retried batch is answered with its original offset instead of being
// appended again, and a batch that skips sequence numbers is refused with
// OUT_OF_ORDER_SEQUENCE_NUMBER.
//
// The sequence state lives in the process's memory: a producer that
// reconnects to another process, or to this one after a restart, starts
// afresh there (its next batch is accepted whatever its sequence). Event
// ids (the record header "id") deduplicate across both.

// rememberedBatches is how many recent batches per producer and partition
// are remembered: Kafka clients keep at most five requests in flight.
const rememberedBatches = 5

// producerIdle is how long sequence state of a producer that sends
// nothing is kept.
const producerIdle = time.Hour

type seqKey struct {
	pid   int64
	topic string
	part  int32
}

type producers struct {
	s      *Server
	mu     sync.Mutex
	states map[seqKey]*sequence
}

// sequence is one producer's state on one partition. Its mutex is held
// from check to record (or unlock), so that one batch of it is appended
// at a time.
type sequence struct {
	mu      sync.Mutex
	epoch   int16
	known   bool
	batches [rememberedBatches]seqBatch // ring, newest at last
	last    int
	used    time.Time

	pending seqBatch // the batch between check and record
}

type seqBatch struct {
	first, last int32
	base        int64
	valid       bool
}

func newProducers(s *Server) *producers {
	return &producers{s: s, states: make(map[seqKey]*sequence)}
}

// check looks a batch up. It returns a locked sequence for a batch to
// append (call record after appending, then unlock; unlock alone after a
// failure), or nil and the original base offset for a duplicate, or an
// error code.
func (ps *producers) check(pid int64, epoch int16, topic string, part int32, first, count int32) (*sequence, int64, int16) {
	now := ps.s.now()
	k := seqKey{pid, topic, part}
	ps.mu.Lock()
	st := ps.states[k]
	if st == nil {
		if len(ps.states) >= 100_000 {
			for k, v := range ps.states {
				if now.Sub(v.used) > producerIdle {
					delete(ps.states, k)
				}
			}
		}
		st = &sequence{}
		ps.states[k] = st
	}
	ps.mu.Unlock()

	st.mu.Lock()
	st.used = now
	last := int32((int64(first) + int64(count) - 1) % (1 << 31)) // sequences wrap at 2^31, as in Kafka
	switch {
	case st.known && epoch < st.epoch:
		st.mu.Unlock()
		return nil, 0, kerr.InvalidProducerEpoch.Code
	case !st.known || epoch > st.epoch:
		// New to this process (or a bumped epoch): accept the sequence.
		st.known, st.epoch = true, epoch
		st.batches = [rememberedBatches]seqBatch{}
	default:
		for _, b := range st.batches {
			if b.valid && b.first == first && b.last == last {
				st.mu.Unlock()
				return nil, b.base, 0
			}
		}
		if prev := st.batches[st.last]; prev.valid && first != prev.last+1 && !(prev.last == 0x7fffffff && first == 0) {
			st.mu.Unlock()
			return nil, 0, kerr.OutOfOrderSequenceNumber.Code
		}
	}
	st.pending = seqBatch{first: first, last: last, valid: true}
	return st, 0, 0
}

// record remembers the pending batch as appended at base, and unlocks.
func (st *sequence) record(base int64) {
	st.pending.base = base
	st.last = (st.last + 1) % rememberedBatches
	st.batches[st.last] = st.pending
}

func (st *sequence) unlock() { st.mu.Unlock() }

// producerIDKey is the counter of producer ids in the group-state bucket.
const producerIDKey = "producer_id"

// initProducerID allocates a producer id. Transactional ids are refused:
// transactions are not supported.
func (c *conn) initProducerID(ctx context.Context, r *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if r.ProducerID >= 0 && r.Version >= 3 {
		// KIP-360: a producer bumps its epoch to go on after an error.
		resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch+1
		return resp
	}
	id, err := c.s.groups.nextProducerID(ctx)
	if err != nil {
		c.s.logger.Warn("kafka: allocate producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

// nextProducerID advances the shared counter with compare-and-set, so
// every process of the cluster hands out distinct ids.
func (co *coordinator) nextProducerID(ctx context.Context) (int64, error) {
	st, err := co.store(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	_, _, err = st.Update(ctx, producerIDKey, func(old []byte) ([]byte, bool, error) {
		n = 0
		if old != nil {
			if err := json.Unmarshal(old, &n); err != nil {
				return nil, false, fmt.Errorf("producer id counter %q: %w", old, err)
			}
		}
		n++
		b, err := json.Marshal(n)
		return b, err == nil, err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
