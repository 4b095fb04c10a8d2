package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrOffsetOutOfRange is returned (wrapped) by FetchFrom for an offset
// before the first event held or after the end of the partition.
var ErrOffsetOutOfRange = errors.New("broker: offset out of range")

// Bounds are a partition's offsets: Start is the first event still held
// (End when none is), End the offset the next appended event will get.
type Bounds struct {
	Start, End int64
}

// Cursor remembers where a FetchFrom ended, so that the next one, from
// that offset, starts at the right entry without searching the stream.
// The zero Cursor knows nothing. A Cursor belongs to one partition.
type Cursor struct {
	offset int64
	seq    uint64 // first stream sequence to look at for offset
}

// Bounds returns the partition's current bounds.
func (b *Broker) Bounds(ctx context.Context, topicName string, part int) (Bounds, error) {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return Bounds{}, err
	}
	if b.isClosed() {
		return Bounds{}, ErrClosed
	}
	bd, _, err := b.bounds(ctx, p)
	return bd, err
}

// bounds reads the partition's stream state and its offset bounds, using
// the offsets remembered for unchanged first and last sequences.
func (b *Broker) bounds(ctx context.Context, p *partition) (Bounds, jetstream.StreamState, error) {
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return Bounds{}, jetstream.StreamState{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return Bounds{}, jetstream.StreamState{}, fmt.Errorf("broker: topic %q partition %d: stream info: %w", p.topic, p.index, unavailable(err))
	}
	s := info.State
	p.boundsMu.Lock()
	endSeq, endOff, firstSeq, firstOff := p.endAtSeq, p.endOffsetAt, p.firstAtSeq, p.firstOffsetAt
	p.boundsMu.Unlock()
	var bd Bounds
	if s.LastSeq == endSeq && endSeq != 0 {
		bd.End = endOff
	} else if bd.End, err = b.endAt(ctx, st, p, s.LastSeq); err != nil {
		return Bounds{}, jetstream.StreamState{}, err
	}
	bd.Start = bd.End
	remember := false
	if s.Msgs > 0 {
		if s.FirstSeq == firstSeq && firstSeq != 0 {
			bd.Start = firstOff
		} else {
			m, err := b.getAtOrAfter(ctx, st, p, s.FirstSeq)
			if err != nil {
				return Bounds{}, jetstream.StreamState{}, err
			}
			if m != nil {
				if bd.Start, _, _, err = parseHeaders(m.Header); err != nil {
					return Bounds{}, jetstream.StreamState{}, fmt.Errorf("broker: topic %q partition %d seq %d: %w", p.topic, p.index, m.Sequence, err)
				}
				firstSeq, remember = m.Sequence, m.Sequence == s.FirstSeq
			}
		}
	}
	p.boundsMu.Lock()
	p.endAtSeq, p.endOffsetAt = s.LastSeq, bd.End
	if remember {
		p.firstAtSeq, p.firstOffsetAt = firstSeq, bd.Start
	}
	p.boundsMu.Unlock()
	return bd, s, nil
}

// FetchFrom returns the events of topic's partition from offset on, as
// entries (the first one cut to start at offset), without waiting for new
// ones: at most maxEvents events, and entries only while their payloads
// stay within maxBytes, except that the first entry is returned whatever
// its size. It also returns the partition's bounds. An offset before
// Bounds.Start or after Bounds.End is ErrOffsetOutOfRange; at End there is
// nothing to return yet. cur, if not nil, is read and updated so that
// consecutive fetches do not search the stream for their start.
func (b *Broker) FetchFrom(ctx context.Context, topicName string, part int, offset int64, cur *Cursor, maxEvents, maxBytes int) ([]Entry, Bounds, error) {
	t, p, err := b.partition(topicName, part)
	if err != nil {
		return nil, Bounds{}, err
	}
	if b.isClosed() {
		return nil, Bounds{}, ErrClosed
	}
	bd, s, err := b.bounds(ctx, p)
	if err != nil {
		return nil, Bounds{}, err
	}
	if offset < bd.Start || offset > bd.End {
		return nil, bd, fmt.Errorf("%w: %q/%d offset %d, held %d to %d", ErrOffsetOutOfRange, topicName, part, offset, bd.Start, bd.End)
	}
	if offset == bd.End || maxEvents <= 0 {
		return nil, bd, nil
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return nil, bd, err
	}
	var seq uint64
	if cur != nil && cur.seq != 0 && cur.offset == offset && cur.seq >= s.FirstSeq {
		seq = cur.seq
	} else {
		m, err := b.seekOffset(ctx, st, p, s, bd.End, offset)
		if err != nil {
			return nil, bd, err
		}
		seq = max(s.FirstSeq, 1)
		if m != nil {
			seq = m.Sequence
		}
	}
	var out []Entry
	events, size := 0, 0
	for events < maxEvents && seq <= s.LastSeq {
		m, err := b.getAtOrAfter(ctx, st, p, seq)
		if err != nil {
			return nil, bd, err
		}
		if m == nil || (len(out) > 0 && size+len(m.Data) > maxBytes) {
			break
		}
		e, err := decodeMsg(p, t.spec.Schema, m.Sequence, m.Time, m.Header, m.Data, offset)
		if err != nil {
			return nil, bd, err
		}
		seq = m.Sequence + 1
		if len(e.Events) == 0 {
			continue
		}
		if len(e.Events) > maxEvents-events {
			e.Events = e.Events[:maxEvents-events]
			seq = m.Sequence // the rest of this entry comes next time
		}
		events += len(e.Events)
		size += len(m.Data)
		offset = e.End()
		out = append(out, e)
	}
	if cur != nil {
		cur.offset, cur.seq = offset, seq
	}
	return out, bd, nil
}

// OffsetAt returns the offset of the first event in the first entry the
// log stored at or after t (store time, close to ingest time) and that
// entry's store time, or the end of the partition and the zero time when
// every entry is older.
func (b *Broker) OffsetAt(ctx context.Context, topicName string, part int, t time.Time) (int64, time.Time, error) {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return 0, time.Time{}, err
	}
	if b.isClosed() {
		return 0, time.Time{}, ErrClosed
	}
	bd, s, err := b.bounds(ctx, p)
	if err != nil {
		return 0, time.Time{}, err
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return 0, time.Time{}, err
	}
	before, err := b.seek(ctx, st, p, s, func(m *jetstream.RawStreamMsg) (bool, error) {
		return m.Time.Before(t), nil
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	seq := s.FirstSeq
	if before != nil {
		seq = before.Sequence + 1
	}
	m, err := b.getAtOrAfter(ctx, st, p, seq)
	if err != nil {
		return 0, time.Time{}, err
	}
	if m == nil || m.Sequence > s.LastSeq {
		return bd.End, time.Time{}, nil
	}
	off, _, _, err := parseHeaders(m.Header)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("broker: topic %q partition %d seq %d: %w", p.topic, p.index, m.Sequence, err)
	}
	return off, m.Time, nil
}
