package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// markerInterval is how often a Broker records, per partition it appended
// to, the end of the log in the offsets bucket (and once more on Close).
const markerInterval = 30 * time.Second

// commitRecord is the value of a consumer's key in the offsets bucket.
type commitRecord struct {
	// Offset is the next event the consumer will read.
	Offset int64 `json:"offset"`
	// EventTime is the event time (UTC µs) of the last event consumed, as the
	// consumer reported it.
	EventTime int64 `json:"event_time,omitempty"`
	// CommittedAt is the broker clock at the commit (UTC µs).
	CommittedAt int64 `json:"committed_at,omitempty"`
	// Registered marks a key written by Register before any commit.
	Registered bool `json:"registered,omitempty"`
	// Owner and Epoch name the process and lease that wrote the record
	// (see Lease); an owned consumer's commits are fenced by them.
	Owner string `json:"owner,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Checkpoint names the object holding the consumer's state at Offset,
	// for consumers that keep one (the speed layer).
	Checkpoint string `json:"checkpoint,omitempty"`
}

// endMarker is the value of a partition's end marker in the offsets bucket.
type endMarker struct {
	Seq uint64 `json:"seq"`
	End int64  `json:"end_offset"`
}

// offsets returns the offsets bucket, creating it on first use.
func (b *Broker) offsets(ctx context.Context) (jetstream.KeyValue, error) {
	b.kvMu.Lock()
	defer b.kvMu.Unlock()
	if b.offsetsKV != nil {
		return b.offsetsKV, nil
	}
	kv, err := b.keyValue(ctx, "offsets")
	if err != nil {
		return nil, err
	}
	b.offsetsKV = kv
	return kv, nil
}

// Commit records that consumer has consumed topic's partition up to, not
// including, offset; eventTime is the event time of the last event it
// consumed (UTC µs, 0 if unknown). Consumers that keep their position
// elsewhere (the speed layer, inside its checkpoint) still commit after
// each checkpoint so that their lag shows. Offsets may move backwards when
// a consumer rewinds. Safe for concurrent use.
func (b *Broker) Commit(ctx context.Context, consumer, topicName string, part int, offset, eventTime int64) error {
	if _, _, err := b.partition(topicName, part); err != nil {
		return err
	}
	if consumer == "" {
		return errors.New("broker: commit: empty consumer name")
	}
	if offset < 0 {
		return fmt.Errorf("broker: commit %s %q/%d: negative offset %d", consumer, topicName, part, offset)
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(commitRecord{Offset: offset, EventTime: eventTime, CommittedAt: b.now().UnixMicro()})
	if _, err := kv.Put(ctx, commitKey(consumer, topicName, part), v); err != nil {
		return fmt.Errorf("broker: commit %s %q/%d: %w", consumer, topicName, part, unavailable(err))
	}
	return nil
}

// Committed returns consumer's last committed offset of topic's partition;
// ok is false when it never committed (a registered consumer included).
func (b *Broker) Committed(ctx context.Context, consumer, topicName string, part int) (offset int64, ok bool, err error) {
	offset, _, ok, err = b.CommittedCheckpoint(ctx, consumer, topicName, part)
	return offset, ok, err
}

// CommittedCheckpoint is Committed with the checkpoint the commit names
// (see Lease.Commit; empty when none): readers that follow an owned
// consumer's state, such as the serving layer's replicas of the speed
// layer, start from it.
func (b *Broker) CommittedCheckpoint(ctx context.Context, consumer, topicName string, part int) (offset int64, checkpoint string, ok bool, err error) {
	if _, _, err := b.partition(topicName, part); err != nil {
		return 0, "", false, err
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return 0, "", false, err
	}
	e, err := kv.Get(ctx, commitKey(consumer, topicName, part))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("broker: committed %s %q/%d: %w", consumer, topicName, part, unavailable(err))
	}
	var rec commitRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return 0, "", false, fmt.Errorf("broker: committed %s %q/%d: %w", consumer, topicName, part, err)
	}
	if rec.Registered {
		return 0, "", false, nil
	}
	return rec.Offset, rec.Checkpoint, true, nil
}

// Register makes consumer of topic show in Lag (at offset 0) before its
// first commit. Registering again, or after a commit, changes nothing.
func (b *Broker) Register(ctx context.Context, consumer, topicName string) error {
	t, ok := b.topics[topicName]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTopic, topicName)
	}
	if consumer == "" {
		return errors.New("broker: register: empty consumer name")
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(commitRecord{Registered: true})
	for _, p := range t.parts {
		_, err := kv.Create(ctx, commitKey(consumer, topicName, p.index), v)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("broker: register %s %q/%d: %w", consumer, topicName, p.index, unavailable(err))
		}
	}
	return nil
}

// Keys of the offsets bucket; docs/log-format.md describes them.
func commitKey(consumer, topicName string, part int) string {
	return "c." + escapeKey(consumer) + "." + topicName + "." + strconv.Itoa(part)
}

func markerKey(p *partition) string { return "end." + p.topic + "." + p.label }

// readKey is the key of consumer's read report on a partition.
func readKey(consumer, topicName string, part int) string {
	return "r." + escapeKey(consumer) + "." + topicName + "." + strconv.Itoa(part)
}

// parseConsumerKey splits a commit key or a read report's key (read is
// true); ok is false for other keys.
func parseConsumerKey(key string) (consumer, topicName string, part int, read, ok bool) {
	rest, found := strings.CutPrefix(key, "c.")
	if !found {
		if rest, found = strings.CutPrefix(key, "r."); !found {
			return "", "", 0, false, false
		}
		read = true
	}
	f := strings.Split(rest, ".")
	if len(f) != 3 {
		return "", "", 0, false, false
	}
	part, err := strconv.Atoi(f[2])
	if err != nil {
		return "", "", 0, false, false
	}
	consumer, ok = unescapeKey(f[0])
	return consumer, f[1], part, read, ok
}

// escapeKey keeps letters, digits, '-' and '_' and writes any other byte as
// '=' and two hex digits, so that a consumer name is one key token.
func escapeKey(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "=%02X", c)
	}
	return sb.String()
}

func unescapeKey(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			sb.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		c, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		sb.WriteByte(byte(c))
		i += 2
	}
	return sb.String(), true
}

// every calls write each interval until Close (which calls the writers
// once more itself): the end markers and the read reports.
func (b *Broker) every(interval time.Duration, write func(context.Context)) {
	defer b.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			write(ctx)
			cancel()
		}
	}
}

// writeMarkers records the end of every partition appended to since the
// last write. The markers let the next writer continue the offsets exactly
// when retention has emptied a partition.
func (b *Broker) writeMarkers(ctx context.Context) {
	for _, t := range b.topics {
		for _, p := range t.parts {
			p.markMu.Lock()
			mk, dirty := endMarker{Seq: p.markSeq, End: p.markEnd}, p.markDirty
			p.markMu.Unlock()
			if !dirty {
				continue
			}
			kv, err := b.offsets(ctx)
			if err != nil {
				b.log.Warn("broker: write end marker", "topic", p.topic, "partition", p.index, "err", err)
				return
			}
			v, _ := json.Marshal(mk)
			if _, err := kv.Put(ctx, markerKey(p), v); err != nil {
				b.log.Warn("broker: write end marker", "topic", p.topic, "partition", p.index, "err", err)
				continue
			}
			p.markMu.Lock()
			if p.markSeq == mk.Seq {
				p.markDirty = false
			}
			p.markMu.Unlock()
		}
	}
}

func (b *Broker) readMarker(ctx context.Context, p *partition) (endMarker, bool, error) {
	kv, err := b.offsets(ctx)
	if b.readOnly && errors.Is(err, jetstream.ErrBucketNotFound) {
		return endMarker{}, false, nil // another site that never wrote one
	}
	if err != nil {
		return endMarker{}, false, err
	}
	e, err := kv.Get(ctx, markerKey(p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return endMarker{}, false, nil
	}
	if err != nil {
		return endMarker{}, false, fmt.Errorf("broker: topic %q partition %d: read end marker: %w", p.topic, p.index, unavailable(err))
	}
	var mk endMarker
	if err := json.Unmarshal(e.Value(), &mk); err != nil {
		return endMarker{}, false, fmt.Errorf("broker: topic %q partition %d: end marker: %w", p.topic, p.index, err)
	}
	return mk, true, nil
}
