package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/nats-io/nats.go/jetstream"
)

// lagKey names the entry holding an offset, whose append time and smallest
// event time never change: entries are immutable.
type lagKey struct {
	topic  string
	part   int
	offset int64
}

// entryTimes are the times lag is measured from: when the log stored the
// entry (JetStream's timestamp of the message) and its smallest event time
// (Lf-Min-Time), both UTC µs.
type entryTimes struct {
	appended, minEvent int64
}

// maxLagCache bounds the memo of entry times; it is cleared when full.
const maxLagCache = 4096

// Lag returns the lag of every consumer that committed or registered, on
// every partition of the pipeline's topics, worst first: sorted by
// ReadLagSeconds descending, then LagSeconds descending, consumer, topic
// and partition. Commits for topics the pipeline no longer has are left
// out.
func (b *Broker) Lag(ctx context.Context) ([]api.Lag, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return nil, err
	}
	recs, reads, mirrors, err := b.commits(ctx, kv)
	if err != nil {
		return nil, err
	}
	states := make(map[*partition]partState)
	now := b.now().UnixMicro()
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
		at, err := b.timesAt(ctx, p, s, l.Offset, l.Lag)
		if err != nil {
			return nil, err
		}
		l.LagSeconds = ageSeconds(now, at.appended)
		l.EventTimeLagSeconds = ageSeconds(now, at.minEvent)
		l.ReadOffset, l.ReadLag, l.ReadLagSeconds = l.Offset, l.Lag, l.LagSeconds
		if r, ok := reads[consumerPart{c.consumer, c.topic, c.part}]; ok && readWins(r, c.rec) {
			l.ReadOffset = r.Offset
			l.ReadLag = max(s.end-r.Offset, 0)
			at, err := b.timesAt(ctx, p, s, r.Offset, l.ReadLag)
			if err != nil {
				return nil, err
			}
			l.ReadLagSeconds = ageSeconds(now, at.appended)
		}
		out = append(out, l)
	}
	out = append(out, b.mirrorLag(mirrors)...)
	slices.SortFunc(out, worstLagFirst)
	return out, nil
}

// worstLagFirst orders lag rows: the oldest unread event first, then the
// oldest uncommitted one, then by name.
func worstLagFirst(a, b api.Lag) int {
	return cmp.Or(
		cmp.Compare(b.ReadLagSeconds, a.ReadLagSeconds),
		cmp.Compare(b.LagSeconds, a.LagSeconds),
		cmp.Compare(a.Consumer, b.Consumer),
		cmp.Compare(a.Topic, b.Topic),
		cmp.Compare(a.Partition, b.Partition),
	)
}

// readWins tells whether a read report says where the consumer is: unless
// the consumer committed after the report and past it. A report older
// than a commit but ahead of it is the normal case (the consumer read on
// and commits later); a newer report behind the commit is a rewind.
func readWins(r readRecord, c commitRecord) bool {
	return r.Offset >= c.Offset || r.At >= c.CommittedAt
}

// ageSeconds is now − t in seconds, 0 when t is unknown (0) or ahead.
func ageSeconds(now, t int64) float64 {
	if t == 0 {
		return 0
	}
	return max(float64(now-t)/1e6, 0)
}

// consumerPart names one consumer's position on one partition.
type consumerPart struct {
	consumer, topic string
	part            int
}

type commit struct {
	consumer, topic string
	part            int
	rec             commitRecord
}

// commits reads every consumer key, read report and link position of the
// offsets bucket in one pass.
func (b *Broker) commits(ctx context.Context, kv jetstream.KeyValue) ([]commit, map[consumerPart]readRecord, []mirrorRecord, error) {
	w, err := kv.WatchFiltered(ctx, []string{"c.>", "r.>", "m.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("broker: lag: %w", unavailable(err))
	}
	defer w.Stop()
	s := offsetsScan{b: b, reads: map[consumerPart]readRecord{}, at: map[string]int{}}
	for {
		select {
		case <-ctx.Done():
			return nil, nil, nil, fmt.Errorf("broker: lag: %w", ctx.Err())
		case e := <-w.Updates():
			if e == nil { // all current values delivered
				return s.commits, s.reads, s.mirrors, nil
			}
			s.add(e.Key(), e.Value())
		}
	}
}

// offsetsScan gathers the offsets bucket's keys as a watch delivers them.
// A key updated while the watch delivers the current values comes again
// (the watch's replay takes in what is written meanwhile), so the later
// value replaces the earlier one: one row per key, as a scrape needs.
type offsetsScan struct {
	b       *Broker
	commits []commit
	reads   map[consumerPart]readRecord
	mirrors []mirrorRecord
	at      map[string]int // key → index in commits or mirrors
}

func (s *offsetsScan) add(key string, value []byte) {
	if m, ok := s.b.parseMirror(key, value); ok {
		if i, ok := s.at[key]; ok {
			s.mirrors[i] = m
			return
		}
		s.at[key] = len(s.mirrors)
		s.mirrors = append(s.mirrors, m)
		return
	}
	consumer, topic, part, read, ok := parseConsumerKey(key)
	if !ok {
		return
	}
	if read {
		var r readRecord
		if err := json.Unmarshal(value, &r); err != nil {
			s.b.log.Warn("broker: bad read report", "key", key, "err", err)
			return
		}
		s.reads[consumerPart{consumer, topic, part}] = r
		return
	}
	c := commit{consumer: consumer, topic: topic, part: part}
	if err := json.Unmarshal(value, &c.rec); err != nil {
		s.b.log.Warn("broker: bad offsets record", "key", key, "err", err)
		return
	}
	if i, ok := s.at[key]; ok {
		s.commits[i] = c
		return
	}
	s.at[key] = len(s.commits)
	s.commits = append(s.commits, c)
}

// timesAt returns the times of the entry holding offset, or of the first
// entry held when offset is older; zero times when nothing is behind
// (lag 0) or no entry is held.
func (b *Broker) timesAt(ctx context.Context, p *partition, s partState, offset, lag int64) (entryTimes, error) {
	if lag <= 0 || s.entries == 0 {
		return entryTimes{}, nil
	}
	offset = max(offset, s.first)
	key := lagKey{p.topic, p.index, offset}
	b.lagMu.Lock()
	t, ok := b.lagCache[key]
	b.lagMu.Unlock()
	if ok {
		return t, nil
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return entryTimes{}, err
	}
	state := jetstream.StreamState{Msgs: s.entries, FirstSeq: s.firstSeq, LastSeq: s.lastSeq}
	m, err := b.seekOffset(ctx, st, p, state, s.end, offset)
	if err != nil {
		return entryTimes{}, err
	}
	if m == nil {
		if m, err = b.getAtOrAfter(ctx, st, p, s.firstSeq); err != nil || m == nil {
			return entryTimes{}, err
		}
	}
	_, _, minTime, err := parseHeaders(m.Header)
	if err != nil {
		return entryTimes{}, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
	}
	t = entryTimes{appended: m.Time.UnixMicro(), minEvent: minTime}
	b.lagMu.Lock()
	if len(b.lagCache) >= maxLagCache {
		clear(b.lagCache)
	}
	b.lagCache[key] = t
	b.lagMu.Unlock()
	return t, nil
}

// progressInterval is how often a Broker writes the read reports that
// changed (and once more on Close).
const progressInterval = time.Second

// Progress records that consumer has read topic's partition up to, not
// including, offset: its position ahead of its commits. A consumer that
// commits only once its work is durable (the lake writer when a file rolls,
// the speed layer at a checkpoint) reports here what it has read, so that
// Lag tells a healthy consumer waiting for its next commit from a stuck
// one. The report is kept in memory and written to the offsets bucket at
// most once per progressInterval; it may move backwards when the consumer
// rewinds. Safe for concurrent use; cheap enough to call per entry.
func (b *Broker) Progress(consumer, topicName string, part int, offset int64) {
	k := consumerPart{consumer, topicName, part}
	b.progressMu.Lock()
	if cur, ok := b.progress[k]; !ok || cur.offset != offset {
		b.progress[k] = progressState{offset: offset, dirty: true}
	}
	b.progressMu.Unlock()
}

// progressState is one read report not yet written (dirty) or written.
type progressState struct {
	offset int64
	dirty  bool
}

// readRecord is the value of a read report in the offsets bucket.
type readRecord struct {
	// Offset is the next event the consumer will read.
	Offset int64 `json:"offset"`
	// At is the broker clock when the report was written (UTC µs).
	At int64 `json:"at"`
}

// writeProgress writes every read report that changed since it was last
// written.
func (b *Broker) writeProgress(ctx context.Context) {
	b.progressMu.Lock()
	var dirty []consumerPart
	for k, s := range b.progress {
		if s.dirty {
			dirty = append(dirty, k)
		}
	}
	b.progressMu.Unlock()
	if len(dirty) == 0 {
		return
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		b.log.Warn("broker: write read reports", "err", err)
		return
	}
	for _, k := range dirty {
		b.progressMu.Lock()
		offset := b.progress[k].offset
		b.progressMu.Unlock()
		v, _ := json.Marshal(readRecord{Offset: offset, At: b.now().UnixMicro()})
		if _, err := kv.Put(ctx, readKey(k.consumer, k.topic, k.part), v); err != nil {
			b.log.Warn("broker: write read report", "consumer", k.consumer, "topic", k.topic, "partition", k.part, "err", unavailable(err))
			continue
		}
		b.progressMu.Lock()
		if b.progress[k].offset == offset {
			b.progress[k] = progressState{offset: offset}
		}
		b.progressMu.Unlock()
	}
}
