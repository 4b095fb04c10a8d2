package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Deduplication of event ids (AppendUnique) is kept in the log itself: an
// index of the ids a topic's partitions hold, built from their entries by
// whichever process appends. Every append expects the stream's last
// sequence (see Append), so before an entry is stored the appender has read
// every entry of the partition before it; when another process appended in
// between, the expectation fails, the appender reads the entries it has not
// seen, drops the events whose ids they hold and tries again. So a retry
// through any ingest process lands once in its partition, without a
// coordinator and without a key-value write per event: one process
// appending alone pays a map lookup per event, two processes pay a read of
// each other's entries. The index is per topic, so within one process an id
// is also recognised in another partition (a retry with another key); across
// processes only within the partition.

// idHash identifies an event id in the index: two independently seeded
// 64-bit hashes. Keeping 16 bytes instead of the id string bounds the index
// whatever the ids look like; a false duplicate needs a 128-bit collision
// (~1e-25 at five million ids).
type idHash [2]uint64

// idOrigin is where an id was first stored.
type idOrigin struct {
	offset    int64
	at        int64 // ingest time of its entry, UTC µs
	partition int32
}

type fifoEntry struct {
	h  idHash
	at int64
}

// dedupIndex remembers the ids of one topic's entries, for the dedup
// window and at most maxIDs ids, oldest forgotten first. Its methods need
// mu held (the partitions of a topic append in parallel).
type dedupIndex struct {
	mu     sync.Mutex
	window int64 // µs
	maxIDs int
	ids    map[idHash]idOrigin
	order  []fifoEntry // insertion order, oldest first from head
	head   int
}

// partDedup is one partition's part in its topic's index: up to which
// stream sequence the partition's entries are in it. Guarded by the
// partition's sem.
type partDedup struct {
	x    *dedupIndex
	part int32
	seq  uint64 // every entry up to this stream sequence is indexed
}

func (b *Broker) hashID(id string) idHash {
	return idHash{maphash.String(b.idSeeds[0], id), maphash.String(b.idSeeds[1], id)}
}

func (x *dedupIndex) lookup(h idHash, horizon int64) (idOrigin, bool) {
	o, ok := x.ids[h]
	return o, ok && o.at >= horizon
}

// insert remembers h unless it is remembered already (the first landing
// of an id is its origin); the caller evicts.
func (x *dedupIndex) insert(h idHash, o idOrigin) {
	if old, ok := x.ids[h]; ok && old.at >= o.at-x.window {
		return
	}
	x.ids[h] = o
	x.order = append(x.order, fifoEntry{h: h, at: o.at})
}

// evict forgets ids past the window or beyond maxIDs, oldest first. An id
// remembered again after it expired has a newer fifo entry too; only the
// entry matching the map's time deletes it.
func (x *dedupIndex) evict(now int64) {
	horizon := now - x.window
	for x.head < len(x.order) {
		e := x.order[x.head]
		if e.at >= horizon && len(x.order)-x.head <= x.maxIDs {
			break
		}
		if o, ok := x.ids[e.h]; ok && o.at == e.at {
			delete(x.ids, e.h)
		}
		x.order[x.head] = fifoEntry{}
		x.head++
	}
	if x.head > 1024 && x.head*2 >= len(x.order) {
		n := copy(x.order, x.order[x.head:])
		clear(x.order[n:])
		x.order = x.order[:n]
		x.head = 0
	}
}

// dedupLimits returns the window (µs) and the ids kept per topic.
func (b *Broker) dedupLimits() (int64, int) {
	w := max(b.p.Ingest.DedupWindow.D().Microseconds(), 0)
	n := b.p.Ingest.DedupMaxIDs
	if n <= 0 {
		n = 5_000_000
	}
	return w, n
}

// topicDedup returns t's index, creating it.
func (b *Broker) topicDedup(t *topic) *dedupIndex {
	b.kvMu.Lock()
	defer b.kvMu.Unlock()
	if t.dedup == nil {
		window, maxIDs := b.dedupLimits()
		t.dedup = &dedupIndex{window: window, maxIDs: maxIDs, ids: map[idHash]idOrigin{}}
	}
	return t.dedup
}

// PrepareDedup builds the id index of topic's partition from the entries
// it holds within ingest.dedup_window (at most ingest.dedup_max_ids events
// of the topic), unless it is built already. AppendUnique builds it on
// first use; ingest calls this at start so that it is ready before the
// first request.
func (b *Broker) PrepareDedup(ctx context.Context, topicName string, part int) error {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return err
	}
	if b.isClosed() {
		return ErrClosed
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.sem }()
	_, err = b.dedupIndexOf(ctx, p)
	return err
}

// dedupIndexOf returns p's part of the index, building it first; the
// caller holds p.sem. The index then knows every entry up to p.lastSeq, so
// the append that follows can expect it.
func (b *Broker) dedupIndexOf(ctx context.Context, p *partition) (*partDedup, error) {
	if p.dedup != nil {
		return p.dedup, nil
	}
	t := b.topics[p.topic]
	pd := &partDedup{x: b.topicDedup(t), part: int32(p.index)}
	if pd.x.window > 0 {
		st, err := b.streamOf(ctx, p)
		if err != nil {
			return nil, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("broker: %q/%d: stream info: %w", p.topic, p.index, unavailable(err))
		}
		end, err := b.endAt(ctx, st, p, info.State.LastSeq)
		if err != nil {
			return nil, err
		}
		from, err := b.dedupScanStart(ctx, st, p, info.State, end, pd.x)
		if err != nil {
			return nil, err
		}
		if from > 0 {
			pd.seq = from - 1
		}
		if _, err := b.catchUp(ctx, st, p, pd, info.State.LastSeq, nil); err != nil {
			return nil, err
		}
		p.lastSeq, p.next, p.known = info.State.LastSeq, end, true
		b.log.Debug("broker: dedup index built", "topic", p.topic, "partition", p.index)
	}
	pd.seq = p.lastSeq
	p.dedup = pd
	return pd, nil
}

// dedupScanStart returns the first sequence worth indexing: the first
// entry stored within the window, or the entry holding the maxIDs-th last
// event if that is later.
func (b *Broker) dedupScanStart(ctx context.Context, st jetstream.Stream, p *partition, s jetstream.StreamState, end int64, x *dedupIndex) (uint64, error) {
	if s.Msgs == 0 {
		return s.LastSeq + 1, nil
	}
	since := b.now().Add(-time.Duration(x.window) * time.Microsecond)
	m, err := b.seek(ctx, st, p, s, func(m *jetstream.RawStreamMsg) (bool, error) {
		return m.Time.Before(since), nil
	})
	if err != nil {
		return 0, err
	}
	from := max(s.FirstSeq, 1)
	if m != nil {
		from = m.Sequence + 1
	}
	if first := end - int64(x.maxIDs); first > 0 {
		m, err := b.seekOffset(ctx, st, p, s, end, first)
		if err != nil {
			return 0, err
		}
		if m != nil && m.Sequence > from {
			from = m.Sequence
		}
	}
	return from, nil
}

// catchUp indexes the entries after pd.seq up to seq and moves p's append
// position to the last of them. When one of them carries a message id of
// mine (an earlier attempt of the append in progress that was stored
// although its acknowledgement was lost), it returns that entry's first
// offset and its index in mine.
func (b *Broker) catchUp(ctx context.Context, st jetstream.Stream, p *partition, pd *partDedup, seq uint64, mine []string) (found *landed, err error) {
	if pd.seq >= seq {
		return nil, nil
	}
	x := pd.x
	schema := b.topics[p.topic].spec.Schema
	last, err := b.scanEntries(ctx, st, p, pd.seq+1, seq, func(m *jetstream.RawStreamMsg) error {
		off, count, _, err := parseHeaders(m.Header)
		if err != nil {
			return fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
		}
		p.lastSeq, p.next, p.known = m.Sequence, off+count, true
		pd.seq = m.Sequence
		if id := m.Header.Get(nats.MsgIdHdr); id != "" && found == nil {
			for k, mid := range mine {
				if mid == id {
					found = &landed{attempt: k, offset: off, seq: m.Sequence}
				}
			}
		}
		if m.Header.Get(HeaderSource) != "" {
			// Pulled from another site (AppendFrom): its source position
			// dedups it, and its ids are that site's.
			return nil
		}
		events, err := DecodeEntry(m.Data, schema, nil)
		if err != nil {
			// Its ids cannot be known; the events are unreadable for
			// every consumer too.
			b.log.Warn("broker: dedup index skips an entry it cannot decode", "topic", p.topic, "partition", p.index, "seq", m.Sequence, "err", err)
			return nil
		}
		at := m.Time.UnixMicro()
		if len(events) > 0 {
			at = events[0].Ingest
		}
		x.mu.Lock()
		for i := range events {
			x.insert(b.hashID(events[i].ID), idOrigin{offset: off + int64(i), at: at, partition: pd.part})
		}
		x.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if last < seq {
		// The entries after last were not delivered. Unless retention
		// removed them (it removes from the front), an id they hold would
		// be missed: fail, and the append reads them again.
		info, err := st.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("broker: %q/%d: stream info: %w", p.topic, p.index, unavailable(err))
		}
		s := info.State
		if s.Msgs > 0 && max(s.FirstSeq, last+1) <= min(s.LastSeq, seq) {
			return nil, fmt.Errorf("%w: %q/%d: entries %d-%d were not delivered", ErrUnavailable, p.topic, p.index, last+1, seq)
		}
	}
	pd.seq = max(pd.seq, seq)
	x.mu.Lock()
	x.evict(b.now().UnixMicro())
	x.mu.Unlock()
	return found, nil
}

// landed is an attempt of the append in progress found in the log.
type landed struct {
	attempt int
	offset  int64
	seq     uint64
}

// scanEntries calls fn for every entry of p with a sequence in [from, to],
// in order, and returns the last sequence it looked at: to, or less when
// the entries after it were not delivered (removed by retention, or not
// answered in time).
func (b *Broker) scanEntries(ctx context.Context, st jetstream.Stream, p *partition, from, to uint64, fn func(*jetstream.RawStreamMsg) error) (uint64, error) {
	if from > to {
		return to, nil
	}
	last := from - 1
	if to-from < scanDirect {
		for seq := from; seq <= to; {
			m, err := b.getAtOrAfter(ctx, st, p, seq)
			if err != nil {
				return last, err
			}
			if m == nil {
				return last, nil
			}
			if m.Sequence > to {
				return to, nil
			}
			if err := fn(m); err != nil {
				return last, err
			}
			last = m.Sequence
			seq = m.Sequence + 1
		}
		return to, nil
	}
	cons, err := b.js.OrderedConsumer(ctx, p.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return last, fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return last, fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return last, fmt.Errorf("broker: %q/%d: read entries: %w", p.topic, p.index, err)
			}
			if md.Sequence.Stream > to {
				return to, nil
			}
			rm := &jetstream.RawStreamMsg{Subject: msg.Subject(), Sequence: md.Sequence.Stream, Header: msg.Headers(), Data: msg.Data(), Time: md.Timestamp}
			if err := fn(rm); err != nil {
				return last, err
			}
			last = md.Sequence.Stream
			if last == to {
				return to, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return last, fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
		}
		if n == 0 {
			return last, nil
		}
	}
}
