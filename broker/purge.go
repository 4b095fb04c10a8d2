package broker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Purge removes the entries of topic's partition that hold only events
// before offset, but never the last entry (whose end is the partition's
// end offset). It is for topics whose consumer has checkpointed what it
// read and has no other reader to wait for, such as a view's partials
// topic; readers positioned before the removed entries start at the first
// one held.
func (b *Broker) Purge(ctx context.Context, topicName string, part int, before int64) error {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return err
	}
	if b.isClosed() {
		return ErrClosed
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("broker: purge %q/%d: stream info: %w", p.topic, p.index, unavailable(err))
	}
	s := info.State
	if s.Msgs <= 1 {
		return nil
	}
	end, err := b.endAt(ctx, st, p, s.LastSeq)
	if err != nil {
		return err
	}
	m, err := b.seekOffset(ctx, st, p, s, end, before)
	if err != nil || m == nil {
		return err
	}
	off, count, _, err := parseHeaders(m.Header)
	if err != nil {
		return fmt.Errorf("broker: purge %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
	}
	keep := m.Sequence // the entry holding before stays
	if off+count <= before {
		keep = m.Sequence + 1
	}
	keep = min(keep, s.LastSeq)
	if keep <= s.FirstSeq {
		return nil
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(keep)); err != nil {
		return fmt.Errorf("broker: purge %q/%d before entry %d: %w", p.topic, p.index, keep, unavailable(err))
	}
	return nil
}
