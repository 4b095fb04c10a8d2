package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/nats-io/nats.go/jetstream"
)

// lagKey names the entry holding an offset, whose smallest event time never
// changes: entries are immutable.
type lagKey struct {
	topic  string
	part   int
	offset int64
}

// maxLagCache bounds the memo of entry times; it is cleared when full.
const maxLagCache = 4096

// Lag returns the lag of every consumer that committed or registered, on
// every partition of the pipeline's topics, sorted by LagSeconds
// descending, then consumer, topic and partition. Commits for topics the
// pipeline no longer has are left out.
func (b *Broker) Lag(ctx context.Context) ([]api.Lag, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return nil, err
	}
	recs, mirrors, err := b.commits(ctx, kv)
	if err != nil {
		return nil, err
	}
	states := make(map[*partition]partState)
	now := b.now()
	out := make([]api.Lag, 0, len(recs))
	for _, c := range recs {
		_, p, err := b.partition(c.topic, c.part)
		if err != nil {
			continue
		}
		s, ok := states[p]
		if !ok {
			if s, err = b.state(ctx, p); err != nil {
				return nil, err
			}
			states[p] = s
		}
		l := api.Lag{Consumer: c.consumer, Topic: c.topic, Partition: c.part, Offset: c.rec.Offset, EndOffset: s.end}
		l.Lag = max(s.end-l.Offset, 0)
		if l.Lag > 0 && s.entries > 0 {
			minTime, ok, err := b.minTimeAt(ctx, p, s, l.Offset)
			if err != nil {
				return nil, err
			}
			if ok {
				l.LagSeconds = max(float64(now.UnixMicro()-minTime)/1e6, 0)
			}
		}
		out = append(out, l)
	}
	out = append(out, b.mirrorLag(mirrors)...)
	slices.SortFunc(out, func(a, b api.Lag) int {
		return cmp.Or(
			cmp.Compare(b.LagSeconds, a.LagSeconds),
			cmp.Compare(a.Consumer, b.Consumer),
			cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.Partition, b.Partition),
		)
	})
	return out, nil
}

type commit struct {
	consumer, topic string
	part            int
	rec             commitRecord
}

// commits reads every consumer key and every link's position of the
// offsets bucket in one pass.
func (b *Broker) commits(ctx context.Context, kv jetstream.KeyValue) ([]commit, []mirrorRecord, error) {
	w, err := kv.WatchFiltered(ctx, []string{"c.>", "m.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, fmt.Errorf("broker: lag: %w", unavailable(err))
	}
	defer w.Stop()
	var out []commit
	var mirrors []mirrorRecord
	for {
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("broker: lag: %w", ctx.Err())
		case e := <-w.Updates():
			if e == nil { // all current values delivered
				return out, mirrors, nil
			}
			if m, ok := b.parseMirror(e.Key(), e.Value()); ok {
				mirrors = append(mirrors, m)
				continue
			}
			c := commit{}
			var ok bool
			if c.consumer, c.topic, c.part, ok = parseCommitKey(e.Key()); !ok {
				continue
			}
			if err := json.Unmarshal(e.Value(), &c.rec); err != nil {
				b.log.Warn("broker: bad offsets record", "key", e.Key(), "err", err)
				continue
			}
			out = append(out, c)
		}
	}
}

// minTimeAt returns Lf-Min-Time of the entry holding offset, or of the
// first entry held when offset is older; ok is false when no entry is held.
func (b *Broker) minTimeAt(ctx context.Context, p *partition, s partState, offset int64) (minTime int64, ok bool, err error) {
	offset = max(offset, s.first)
	key := lagKey{p.topic, p.index, offset}
	b.lagMu.Lock()
	t, ok := b.lagCache[key]
	b.lagMu.Unlock()
	if ok {
		return t, true, nil
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return 0, false, err
	}
	state := jetstream.StreamState{Msgs: s.entries, FirstSeq: s.firstSeq, LastSeq: s.lastSeq}
	m, err := b.seekOffset(ctx, st, p, state, s.end, offset)
	if err != nil {
		return 0, false, err
	}
	if m == nil {
		if m, err = b.getAtOrAfter(ctx, st, p, s.firstSeq); err != nil || m == nil {
			return 0, false, err
		}
	}
	_, _, t, err = parseHeaders(m.Header)
	if err != nil {
		return 0, false, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
	}
	b.lagMu.Lock()
	if len(b.lagCache) >= maxLagCache {
		clear(b.lagCache)
	}
	b.lagCache[key] = t
	b.lagMu.Unlock()
	return t, true, nil
}
