package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Entries pulled from another site (package mirror) say where they come
// from, so that the log itself tells what it holds of each source and a
// pull is appended exactly once, whatever fails and whoever retries:
//
//	Lf-Source      <site>/<topic>/<partition> of the other site
//	Lf-Source-End  the offset there after the entry's last event
//
// AppendFrom appends only if the partition holds nothing of the source from
// the append's first event on: a compare-and-set on the log, checked
// against every entry stored since the caller's last mark, and made atomic
// by the expected last sequence every append carries. docs/sites.md explains
// why this and not deduplication by id.
const (
	HeaderSource    = "Lf-Source"
	HeaderSourceEnd = "Lf-Source-End"
)

// ErrAhead is returned (wrapped, in an *AheadError) by AppendFrom when the
// partition already holds events of the source at or after the append's
// start: another process (or an earlier run) appended them. Nothing was
// appended.
var ErrAhead = errors.New("broker: the partition already holds events of the source past the append's start")

// AheadError carries the partition's mark when AppendFrom refused.
type AheadError struct {
	Mark Mark
}

func (e *AheadError) Error() string {
	return fmt.Sprintf("%v (it holds the source below offset %d)", ErrAhead, e.Mark.HW)
}

func (e *AheadError) Unwrap() error { return ErrAhead }

// Mark is what a partition holds of one source: every event of the source
// that belongs to this partition with an offset (at the source) below HW,
// as of the partition's entry at stream sequence Seq. Marks only grow.
type Mark struct {
	Seq uint64 `json:"seq"`
	HW  int64  `json:"hw"`
}

// newer reports whether m describes the partition at a later sequence than
// o, or at the same one with more.
func (m Mark) newer(o Mark) bool { return m.Seq > o.Seq || m.Seq == o.Seq && m.HW > o.HW }

// Origin says where the events of an AppendFrom come from.
type Origin struct {
	// Source names the other site's partition: <site>/<topic>/<partition>.
	Source string
	// Start is the source offset the append starts at: the partition must
	// hold no event of the source at or after it. End is the source offset
	// after the last event appended: every event of the source for this
	// partition below it is in the append or before it.
	Start, End int64
	// Since is what the caller knows of the partition (a Mark returned
	// earlier, or kept with its position); the broker reads only the
	// entries stored after it. The zero Mark reads the whole partition.
	Since Mark
}

// sourceAppend is an AppendFrom in progress: its origin and the mark found.
type sourceAppend struct {
	o    Origin
	mark Mark
}

// AppendFrom appends events, all of one partition of topic, like Append,
// recording o in the entry, if the partition holds no event of o.Source at
// or after o.Start; it returns the partition's mark for the source after
// the append. If it does hold some, nothing is appended and the error is an
// *AheadError with the mark: drop the events below Mark.HW and call again
// from there (an append whose events are all below it is already done). The
// check and the append are one step: another writer's entry in between
// makes the append fail its expected last sequence, and the check runs
// again.
//
// Errors otherwise as Append's.
func (b *Broker) AppendFrom(ctx context.Context, topicName string, part int, events []event.Event, o Origin) (Mark, error) {
	if o.Source == "" || o.End <= o.Start || o.Start < 0 {
		return Mark{}, fmt.Errorf("broker: append to %q partition %d: bad origin %q [%d, %d)", topicName, part, o.Source, o.Start, o.End)
	}
	src := &sourceAppend{o: o}
	if _, err := b.appendEntry(ctx, topicName, part, events, src); err != nil {
		return src.mark, err
	}
	return src.mark, nil
}

// checkSource brings the partition's mark for the source up to its last
// entry and refuses with an *AheadError if it passes the append's start.
// The caller holds p.sem with p.lastSeq known.
func (b *Broker) checkSource(ctx context.Context, st jetstream.Stream, p *partition, src *sourceAppend) error {
	if p.sources == nil {
		p.sources = map[string]Mark{}
	}
	m := src.o.Since
	if known, ok := p.sources[src.o.Source]; ok && known.newer(m) {
		m = known
	}
	if m.Seq < p.lastSeq {
		first := m.Seq + 1
		err := b.scanHeaders(ctx, st, p, first, p.lastSeq, func(seq uint64, h nats.Header) error {
			if h.Get(HeaderSource) != src.o.Source {
				return nil
			}
			end, err := strconv.ParseInt(h.Get(HeaderSourceEnd), 10, 64)
			if err != nil {
				return fmt.Errorf("broker: %q/%d entry %d: %w: header %s: %w", p.topic, p.index, seq, ErrCorruptEntry, HeaderSourceEnd, err)
			}
			m.HW = max(m.HW, end)
			return nil
		})
		if err != nil {
			return err
		}
		m.Seq = p.lastSeq
	}
	p.sources[src.o.Source] = m
	src.mark = m
	if m.HW > src.o.Start {
		return &AheadError{Mark: m}
	}
	return nil
}

// stored records that the append's entry was stored at seq. src may be nil
// (a plain Append).
func (src *sourceAppend) stored(p *partition, seq uint64) {
	if src == nil {
		return
	}
	src.mark = Mark{Seq: seq, HW: src.o.End}
	p.sources[src.o.Source] = src.mark
}

// scanDirect is the most entries scanHeaders reads one request each; more
// are read with a consumer that delivers headers only.
const scanDirect = 32

// scanHeaders calls fn with the headers of every entry of p with a sequence
// in [from, to], in order. Entries removed by retention are skipped.
func (b *Broker) scanHeaders(ctx context.Context, st jetstream.Stream, p *partition, from, to uint64, fn func(seq uint64, h nats.Header) error) error {
	if from > to {
		return nil
	}
	if to-from < scanDirect {
		for seq := from; seq <= to; {
			m, err := b.getAtOrAfter(ctx, st, p, seq)
			if err != nil {
				return err
			}
			if m == nil || m.Sequence > to {
				return nil
			}
			if err := fn(m.Sequence, m.Header); err != nil {
				return err
			}
			seq = m.Sequence + 1
		}
		return nil
	}
	cons, err := b.js.OrderedConsumer(ctx, p.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
		HeadersOnly:   true,
	})
	if err != nil {
		return fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
	}
	for {
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("broker: %q/%d: read entries: %w", p.topic, p.index, err)
			}
			seq := md.Sequence.Stream
			if seq > to {
				return nil
			}
			if err := fn(seq, msg.Headers()); err != nil {
				return err
			}
			if seq == to {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("broker: %q/%d: read entries %d-%d: %w", p.topic, p.index, from, to, unavailable(err))
		}
		if n == 0 {
			// Nothing more is stored (retention removed the rest, or it is
			// not delivered yet): make sure which.
			info, err := st.Info(ctx)
			if err != nil {
				return fmt.Errorf("broker: %q/%d: stream info: %w", p.topic, p.index, unavailable(err))
			}
			if info.State.LastSeq < to || info.State.Msgs == 0 {
				return nil
			}
			return fmt.Errorf("%w: %q/%d: entries up to %d were not delivered", ErrUnavailable, p.topic, p.index, to)
		}
	}
}

// LastSeq returns the stream sequence of the partition's last entry (0 for
// none): a Mark{Seq: LastSeq} taken before anything of a source was
// appended lets AppendFrom skip the entries before it.
func (b *Broker) LastSeq(ctx context.Context, topicName string, part int) (uint64, error) {
	_, p, err := b.partition(topicName, part)
	if err != nil {
		return 0, err
	}
	_, s, err := b.bounds(ctx, p)
	if err != nil {
		return 0, err
	}
	return s.LastSeq, nil
}

// MirrorPosition is where a link pulling another site's partition stands,
// kept in the offsets bucket under m.<consumer>.<partition> (the other
// site's partition): what it pulled, what it knows of the other site, and
// what the local partitions hold of it.
type MirrorPosition struct {
	// Topic is the local topic the link pulls into.
	Topic string `json:"topic"`
	// Offset is the next offset to pull from the other site's partition;
	// every event before it is in the local topic.
	Offset int64 `json:"offset"`
	// End is the other site's end offset of the partition when it was
	// last reached; Oldest the append time there (JetStream's timestamp,
	// UTC µs) of the entry holding the oldest event not pulled, and
	// OldestEvent that entry's smallest event time, 0 when none is known;
	// Seen when (UTC µs) the other site was last reached.
	End         int64 `json:"end_offset"`
	Oldest      int64 `json:"oldest,omitempty"`
	OldestEvent int64 `json:"oldest_event,omitempty"`
	Seen        int64 `json:"seen,omitempty"`
	// Marks are, per local partition, what it holds of the source (see
	// AppendFrom), at least up to Offset.
	Marks []Mark `json:"marks"`
	// CommittedAt is the broker clock at the commit (UTC µs).
	CommittedAt int64 `json:"committed_at,omitempty"`
}

// mirrorStale is how long after the other site was last reached a link's
// lag in seconds counts from then: whatever that site appended since is
// unseen.
const mirrorStale = 10 * time.Second

func mirrorKey(consumer string, part int) string {
	return "m." + escapeKey(consumer) + "." + strconv.Itoa(part)
}

// CommitMirror records a link's position for the other site's partition
// part. consumer is the link's name (mirror.<site>.<topic>).
func (b *Broker) CommitMirror(ctx context.Context, consumer string, part int, pos MirrorPosition) error {
	if consumer == "" || part < 0 || pos.Offset < 0 {
		return fmt.Errorf("broker: commit mirror %q partition %d offset %d: bad position", consumer, part, pos.Offset)
	}
	if _, ok := b.topics[pos.Topic]; !ok {
		return fmt.Errorf("%w %q (mirror %s)", ErrUnknownTopic, pos.Topic, consumer)
	}
	kv, err := b.offsets(ctx)
	if err != nil {
		return err
	}
	pos.CommittedAt = b.now().UnixMicro()
	v, _ := json.Marshal(pos)
	if _, err := kv.Put(ctx, mirrorKey(consumer, part), v); err != nil {
		return fmt.Errorf("broker: commit mirror %s/%d: %w", consumer, part, unavailable(err))
	}
	return nil
}

// MirrorPosition returns the position last committed by CommitMirror; ok
// is false when there is none.
func (b *Broker) MirrorPosition(ctx context.Context, consumer string, part int) (pos MirrorPosition, ok bool, err error) {
	kv, err := b.offsets(ctx)
	if err != nil {
		return pos, false, err
	}
	e, err := kv.Get(ctx, mirrorKey(consumer, part))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return pos, false, nil
	}
	if err != nil {
		return pos, false, fmt.Errorf("broker: mirror position %s/%d: %w", consumer, part, unavailable(err))
	}
	if err := json.Unmarshal(e.Value(), &pos); err != nil {
		return pos, false, fmt.Errorf("broker: mirror position %s/%d: %w", consumer, part, err)
	}
	return pos, true, nil
}

// mirrorRecord is one link's position read back from the offsets bucket.
type mirrorRecord struct {
	consumer string
	part     int
	pos      MirrorPosition
}

// parseMirror reads a link's position; ok is false for other keys.
func (b *Broker) parseMirror(key string, value []byte) (mirrorRecord, bool) {
	rest, found := strings.CutPrefix(key, "m.")
	if !found {
		return mirrorRecord{}, false
	}
	f := strings.Split(rest, ".")
	if len(f) != 2 {
		return mirrorRecord{}, false
	}
	consumer, ok := unescapeKey(f[0])
	part, err := strconv.Atoi(f[1])
	if !ok || err != nil {
		return mirrorRecord{}, false
	}
	m := mirrorRecord{consumer: consumer, part: part}
	if err := json.Unmarshal(value, &m.pos); err != nil {
		b.log.Warn("broker: bad mirror position", "key", key, "err", err)
		return mirrorRecord{}, false
	}
	return m, true
}

// mirrorLag turns the links' positions into lag rows: the partition is the
// other site's, the offsets are its offsets, and the lag in seconds is the
// consumers' rule at the other site (now − the append time there of the
// oldest event not pulled; the event-time lag from that entry's smallest
// event time). A link whose site was last reached more than mirrorStale ago
// has both counted from then at least, since what that site appended since
// is unseen. A link reads and commits together, so its read position is its
// committed one.
func (b *Broker) mirrorLag(recs []mirrorRecord) []api.Lag {
	now := b.now().UnixMicro()
	out := make([]api.Lag, 0, len(recs))
	for _, m := range recs {
		pos := m.pos
		if _, ok := b.topics[pos.Topic]; !ok {
			continue
		}
		l := api.Lag{Consumer: m.consumer, Topic: pos.Topic, Partition: m.part, Offset: pos.Offset, EndOffset: max(pos.End, pos.Offset)}
		l.Lag = l.EndOffset - l.Offset
		if l.Lag > 0 {
			l.LagSeconds = ageSeconds(now, pos.Oldest)
			l.EventTimeLagSeconds = ageSeconds(now, pos.OldestEvent)
		}
		if pos.Seen > 0 && now-pos.Seen > mirrorStale.Microseconds() {
			unseen := ageSeconds(now, pos.Seen)
			l.LagSeconds = max(l.LagSeconds, unseen)
			l.EventTimeLagSeconds = max(l.EventTimeLagSeconds, unseen)
		}
		l.ReadOffset, l.ReadLag, l.ReadLagSeconds = l.Offset, l.Lag, l.LagSeconds
		out = append(out, l)
	}
	return out
}
