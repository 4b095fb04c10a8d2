package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

var (
	// ErrUnknownTopic is returned (wrapped) for a topic the pipeline does not define.
	ErrUnknownTopic = errors.New("broker: unknown topic")
	// ErrUnknownPartition is returned (wrapped) for a partition number
	// outside [0, partitions).
	ErrUnknownPartition = errors.New("broker: unknown partition")
)

// Entry header names; see docs/log-format.md.
const (
	HeaderOffset  = "Lf-Offset"
	HeaderCount   = "Lf-Count"
	HeaderMinTime = "Lf-Min-Time"
)

// duplicateWindow is how long JetStream remembers an append's message id.
// The broker uses it only to recognise its own retry of an append whose
// first acknowledgement was lost, which happens within seconds; event-level
// deduplication is ingest's. A long window would cost memory per entry.
const duplicateWindow = 15 * time.Second

type topic struct {
	spec  *pipelines.Topic
	parts []*partition
	dedup *dedupIndex // for AppendUnique, created on first use
}

// partition is one partition of a topic: one JetStream stream with one subject.
type partition struct {
	topic   string
	index   int
	label   string // index as text, for metric labels
	stream  string
	subject string

	// sem serialises appends; see Append for why they are not pipelined.
	sem chan struct{}
	// Guarded by sem: what the next append expects, valid when known.
	known   bool
	lastSeq uint64
	next    int64
	// dedup is the partition's part in its topic's index of ids for
	// AppendUnique, built on first use.
	dedup *partDedup

	// Guarded by markMu: the last acknowledged append's end, for the marker.
	markMu    sync.Mutex
	markSeq   uint64
	markEnd   int64
	markDirty bool

	stMu sync.Mutex
	st   jetstream.Stream

	watch appendWatch // see Appended

	decoded decodedCache // events its Readers decoded, shared between them

	// Guarded by sem: what the partition holds of each other site's
	// partition it mirrors (AppendFrom), keyed by Origin.Source.
	sources map[string]Mark

	// Guarded by boundsMu: the offsets at the stream's first and last
	// sequence seen last, so that reading bounds costs one request when
	// the log has not moved at either end.
	boundsMu                   sync.Mutex
	firstAtSeq, endAtSeq       uint64
	firstOffsetAt, endOffsetAt int64

	m partitionMetrics
}

func newTopic(b *Broker, spec *pipelines.Topic) *topic {
	n := max(spec.Partitions, 1)
	t := &topic{spec: spec, parts: make([]*partition, n)}
	for i := range n {
		p := &partition{
			topic:   spec.Name,
			index:   i,
			label:   strconv.Itoa(i),
			stream:  fmt.Sprintf("%s_%s_%d", b.prefix, spec.Name, i),
			subject: fmt.Sprintf("%s.%s.%d", b.subject, spec.Name, i),
			sem:     make(chan struct{}, 1),
		}
		p.m = b.metrics.forPartition(spec.Name, p.label)
		t.parts[i] = p
	}
	return t
}

func (b *Broker) partition(topicName string, part int) (*topic, *partition, error) {
	t, ok := b.topics[topicName]
	if !ok {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownTopic, topicName)
	}
	if part < 0 || part >= len(t.parts) {
		return nil, nil, fmt.Errorf("%w: topic %q has no partition %d (it has %d)", ErrUnknownPartition, topicName, part, len(t.parts))
	}
	return t, t.parts[part], nil
}

// streamOf returns the JetStream handle of a partition's stream, looked up
// once and then cached.
func (b *Broker) streamOf(ctx context.Context, p *partition) (jetstream.Stream, error) {
	p.stMu.Lock()
	defer p.stMu.Unlock()
	if p.st != nil {
		return p.st, nil
	}
	st, err := b.js.Stream(ctx, p.stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("broker: topic %q partition %d: stream %s does not exist (EnsureTopics has not run): %w", p.topic, p.index, p.stream, err)
		}
		return nil, fmt.Errorf("broker: topic %q partition %d: %w", p.topic, p.index, unavailable(err))
	}
	p.st = st
	return st, nil
}

func (b *Broker) streamConfig(t *topic, p *partition) jetstream.StreamConfig {
	maxBytes := int64(t.spec.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = -1
	}
	maxAge := t.spec.Retention.D()
	dup := duplicateWindow
	if maxAge > 0 && maxAge < dup {
		dup = maxAge
	}
	return jetstream.StreamConfig{
		Name:        p.stream,
		Description: fmt.Sprintf("lambdaflow topic %s partition %d", t.spec.Name, p.index),
		Subjects:    []string{p.subject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.replicas,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Discard:     jetstream.DiscardOld,
		Duplicates:  dup,
	}
}

// EnsureTopics creates or updates the streams of every topic of the
// pipeline (one per partition) and the offsets bucket. Raising a topic's
// partition count adds streams; events already in the log stay where they
// are, so from then on a key may land in another partition than its older
// events. Lowering it is an error naming the topic, and nothing is changed
// for that topic.
func (b *Broker) EnsureTopics(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	for i := range b.logTopics {
		t := b.topics[b.logTopics[i].Name]
		existing, err := b.existingPartitions(ctx, t)
		if err != nil {
			return err
		}
		if len(existing) > 0 && existing[len(existing)-1] >= len(t.parts) {
			return fmt.Errorf("broker: topic %q has %d partitions in the log but %d configured: the partition count of a topic cannot be lowered",
				t.spec.Name, existing[len(existing)-1]+1, len(t.parts))
		}
		for _, p := range t.parts {
			st, err := b.createStream(ctx, b.streamConfig(t, p))
			if err != nil {
				return fmt.Errorf("broker: topic %q partition %d: create stream %s: %w", t.spec.Name, p.index, p.stream, unavailable(err))
			}
			p.stMu.Lock()
			p.st = st
			p.stMu.Unlock()
		}
	}
	if _, err := b.offsets(ctx); err != nil {
		return err
	}
	return b.advertise(ctx)
}

// createStream creates or updates a stream, waiting for the cluster as
// whileForming does.
func (b *Broker) createStream(ctx context.Context, cfg jetstream.StreamConfig) (st jetstream.Stream, err error) {
	err = b.whileForming(ctx, "stream "+cfg.Name, func() error {
		st, err = b.js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	return st, err
}

// whileForming runs f, and on a cluster runs it again after what may pass
// (a timeout, no quorum yet) until it succeeds or ctx ends: a replicated
// stream or bucket cannot be placed until enough nodes have joined, and on
// a freshly formed cluster its creation can outlast one request's timeout.
// The first processes of a cluster wait for it instead of exiting.
func (b *Broker) whileForming(ctx context.Context, what string, f func() error) error {
	start := time.Now()
	next := start.Add(10 * time.Second)
	delay := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || b.replicas <= 1 || !(transient(err) || noPeersYet(err)) || ctx.Err() != nil {
			return err
		}
		if time.Now().After(next) {
			b.log.Warn("broker: waiting for the cluster to create "+what, "replicas", b.replicas,
				"waited", time.Since(start).Round(time.Second), "err", err)
			next = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// errCodeNoPeers is JetStream's "no suitable peers for placement": the
// meta leader does not know enough servers yet (a cluster forming, or one
// that lost servers), or the replicas outnumber the servers for good.
const errCodeNoPeers = 10005

// noPeersYet reports whether err is errCodeNoPeers. Only startup waits on
// it (whileForming, which says every 10 s what it waits for): elsewhere it
// is an error to report.
func noPeersYet(err error) bool {
	var je jetstream.JetStreamError
	return errors.As(err, &je) && je.APIError() != nil && je.APIError().ErrorCode == errCodeNoPeers
}

// existingPartitions returns the sorted partition numbers of t that have a
// stream, found by the subjects they listen on.
func (b *Broker) existingPartitions(ctx context.Context, t *topic) ([]int, error) {
	lister := b.js.StreamNames(ctx, jetstream.WithStreamListSubject(b.subject+"."+t.spec.Name+".*"))
	namePrefix := b.prefix + "_" + t.spec.Name + "_"
	var parts []int
	for name := range lister.Name() {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, namePrefix)); err == nil && strings.HasPrefix(name, namePrefix) {
			parts = append(parts, n)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("broker: topic %q: list streams: %w", t.spec.Name, unavailable(err))
	}
	slices.Sort(parts)
	return parts, nil
}

// Topics describes every topic of the log in pipeline order: the user topics,
// then one per view, then one dead-letter topic per sink.
func (b *Broker) Topics(ctx context.Context) ([]api.Topic, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	out := make([]api.Topic, 0, len(b.logTopics))
	for i := range b.logTopics {
		t := b.topics[b.logTopics[i].Name]
		ti := api.Topic{
			Name:       t.spec.Name,
			Partitions: make([]api.Partition, 0, len(t.parts)),
			Retention:  t.spec.Retention.D().String(),
			MaxBytes:   int64(t.spec.MaxBytes),
			Replicas:   b.replicas,
		}
		for _, p := range t.parts {
			s, err := b.state(ctx, p)
			if err != nil {
				return nil, err
			}
			pi := api.Partition{
				Partition:   p.index,
				FirstOffset: -1,
				LastOffset:  -1,
				EndOffset:   s.end,
				Bytes:       int64(s.bytes),
				Entries:     s.entries,
			}
			if s.entries > 0 {
				pi.FirstOffset, pi.LastOffset = s.first, s.end-1
				ti.Events += s.end - s.first
			}
			ti.Bytes += pi.Bytes
			ti.Partitions = append(ti.Partitions, pi)
		}
		out = append(out, ti)
	}
	return out, nil
}

// partState is a snapshot of a partition's stream.
type partState struct {
	firstSeq, lastSeq uint64
	entries, bytes    uint64
	first             int64 // offset of the first event held; valid when entries > 0
	end               int64 // next offset to be written
}

func (b *Broker) state(ctx context.Context, p *partition) (partState, error) {
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return partState{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return partState{}, fmt.Errorf("broker: topic %q partition %d: stream info: %w", p.topic, p.index, unavailable(err))
	}
	s := partState{
		firstSeq: info.State.FirstSeq,
		lastSeq:  info.State.LastSeq,
		entries:  info.State.Msgs,
		bytes:    info.State.Bytes,
	}
	if s.end, err = b.endAt(ctx, st, p, s.lastSeq); err != nil {
		return partState{}, err
	}
	if s.entries > 0 {
		m, err := b.getAtOrAfter(ctx, st, p, s.firstSeq)
		if err != nil {
			return partState{}, err
		}
		if m == nil {
			// Everything expired between the two requests.
			s.entries, s.bytes = 0, 0
		} else if s.first, _, _, err = parseHeaders(m.Header); err != nil {
			return partState{}, fmt.Errorf("broker: topic %q partition %d seq %d: %w", p.topic, p.index, m.Sequence, err)
		}
	}
	return s, nil
}

// endAt returns the next offset to be written after the entry at lastSeq,
// the stream's last sequence. When that entry is gone (retention emptied
// the stream, or it was deleted) the end is taken from the end marker if
// the marker is that recent, and otherwise bounded from above (see
// docs/log-format.md, "Offsets after retention").
func (b *Broker) endAt(ctx context.Context, st jetstream.Stream, p *partition, lastSeq uint64) (int64, error) {
	if lastSeq == 0 {
		return 0, nil
	}
	m, err := st.GetMsg(ctx, lastSeq)
	if err == nil {
		off, count, _, err := parseHeaders(m.Header)
		if err != nil {
			return 0, fmt.Errorf("broker: topic %q partition %d seq %d: %w", p.topic, p.index, lastSeq, err)
		}
		return off + count, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("broker: topic %q partition %d: read entry %d: %w", p.topic, p.index, lastSeq, unavailable(err))
	}
	var refSeq uint64
	var refEnd int64
	if m, err := st.GetLastMsgForSubject(ctx, p.subject); err == nil {
		off, count, _, err := parseHeaders(m.Header)
		if err != nil {
			return 0, fmt.Errorf("broker: topic %q partition %d seq %d: %w", p.topic, p.index, m.Sequence, err)
		}
		refSeq, refEnd = m.Sequence, off+count
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("broker: topic %q partition %d: read last entry: %w", p.topic, p.index, unavailable(err))
	}
	mk, ok, err := b.readMarker(ctx, p)
	if err != nil {
		return 0, err
	}
	if ok && mk.Seq <= lastSeq && mk.Seq >= refSeq {
		refSeq, refEnd = mk.Seq, mk.End
	}
	end := refEnd + int64(lastSeq-refSeq)*MaxEntryEvents
	if refSeq != lastSeq {
		b.log.Warn("broker: end of partition unknown after retention; skipping offsets",
			"topic", p.topic, "partition", p.index, "last_seq", lastSeq, "known_seq", refSeq, "end_offset", end)
	}
	return end, nil
}

// getAtOrAfter returns the first entry at sequence seq or later, or nil
// when there is none. Sequences have gaps where retention removed entries.
func (b *Broker) getAtOrAfter(ctx context.Context, st jetstream.Stream, p *partition, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := st.GetMsg(ctx, max(seq, 1), jetstream.WithGetMsgSubject(p.subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: topic %q partition %d: read entry %d: %w", p.topic, p.index, seq, unavailable(err))
	}
	return m, nil
}

// parseHeaders reads an entry's offset, event count and smallest event time.
func parseHeaders(h nats.Header) (offset, count, minTime int64, err error) {
	if offset, err = headerInt(h, HeaderOffset); err != nil {
		return
	}
	if count, err = headerInt(h, HeaderCount); err != nil {
		return
	}
	if minTime, err = headerInt(h, HeaderMinTime); err != nil {
		return
	}
	if offset < 0 || count < 1 {
		err = fmt.Errorf("%w: offset %d, count %d", ErrCorruptEntry, offset, count)
	}
	return
}

func headerInt(h nats.Header, name string) (int64, error) {
	v := h[name]
	if len(v) == 0 {
		return 0, fmt.Errorf("%w: header %s missing", ErrCorruptEntry, name)
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: header %s: %w", ErrCorruptEntry, name, err)
	}
	return n, nil
}
