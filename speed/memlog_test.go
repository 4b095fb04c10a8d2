package speed

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// memLog is a Log in memory, for tests of the speed layer's own logic.
type memLog struct {
	mu          sync.Mutex
	parts       map[string][]*memPart
	checkpoints map[string][]byte
	commits     map[string]memCommit
	reads       map[string]int64 // Progress reports
	saves       int
	// gates[topic], when set, holds appends to topic until it is closed,
	// like a log slow to make them durable.
	gates map[string]chan struct{}
	// gate, when set, is asked before every append: the append waits until
	// the channel it returns is closed (nil: not at all). Set it before the
	// log is used.
	gate func(topic string, part int, events []event.Event) <-chan struct{}
	// readers counts the open readers of each topic.
	readers map[string]int
}

// hold makes appends to topic wait until the returned function is called.
func (l *memLog) hold(topic string) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gates == nil {
		l.gates = map[string]chan struct{}{}
	}
	gate := make(chan struct{})
	l.gates[topic] = gate
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.gates, topic)
		close(gate)
	}
}

type memCommit struct {
	offset     int64
	checkpoint string
}

type memPart struct {
	entries []broker.Entry
	end     int64
	grew    chan struct{} // closed and replaced on every append
}

func newMemLog(p *pipelines.Pipeline) *memLog {
	l := &memLog{parts: map[string][]*memPart{}, checkpoints: map[string][]byte{}, commits: map[string]memCommit{}, reads: map[string]int64{},
		readers: map[string]int{}}
	for _, t := range p.LogTopics() {
		for range max(t.Partitions, 1) {
			l.parts[t.Name] = append(l.parts[t.Name], &memPart{grew: make(chan struct{})})
		}
	}
	return l
}

func (l *memLog) part(topic string, part int) (*memPart, error) {
	ps, ok := l.parts[topic]
	if !ok {
		return nil, fmt.Errorf("%w %q", broker.ErrUnknownTopic, topic)
	}
	if part < 0 || part >= len(ps) {
		return nil, fmt.Errorf("%w: %d", broker.ErrUnknownPartition, part)
	}
	return ps[part], nil
}

func (l *memLog) Append(ctx context.Context, topic string, part int, events []event.Event) (int64, error) {
	l.mu.Lock()
	gates := []<-chan struct{}{l.gates[topic]}
	l.mu.Unlock()
	if l.gate != nil {
		gates = append(gates, l.gate(topic, part, events))
	}
	for _, gate := range gates {
		if gate == nil {
			continue
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.part(topic, part)
	if err != nil {
		return 0, err
	}
	off := p.end
	p.entries = append(p.entries, broker.Entry{Topic: topic, Partition: part, Offset: off, Events: slices.Clone(events)})
	p.end += int64(len(events))
	close(p.grew)
	p.grew = make(chan struct{})
	return off, nil
}

// entriesFrom returns the entries holding offsets from on, the first cut.
func (p *memPart) entriesFrom(from int64) []broker.Entry {
	var out []broker.Entry
	for _, e := range p.entries {
		if e.End() <= from {
			continue
		}
		if e.Offset < from {
			e.Events = e.Events[from-e.Offset:]
			e.Offset = from
		}
		out = append(out, e)
	}
	return out
}

func (l *memLog) Fetch(_ context.Context, topic string, part int, from int64, max int) ([]broker.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.part(topic, part)
	if err != nil {
		return nil, err
	}
	var out []broker.Entry
	n := 0
	for _, e := range p.entriesFrom(from) {
		if n >= max {
			break
		}
		if len(e.Events) > max-n {
			e.Events = e.Events[:max-n]
		}
		n += len(e.Events)
		out = append(out, e)
	}
	return out, nil
}

func (l *memLog) End(_ context.Context, topic string, part int) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.part(topic, part)
	if err != nil {
		return 0, err
	}
	return p.end, nil
}

type memReader struct {
	l     *memLog
	topic string
	part  int
	next  int64
}

func (l *memLog) Read(_ context.Context, topic string, part int, from int64) (EntryReader, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.part(topic, part); err != nil {
		return nil, err
	}
	l.readers[topic]++
	return &memReader{l: l, topic: topic, part: part, next: from}, nil
}

// openReaders returns how many readers of topic are open.
func (l *memLog) openReaders(topic string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readers[topic]
}

func (r *memReader) Next(ctx context.Context) (broker.Entry, error) {
	for {
		r.l.mu.Lock()
		p, _ := r.l.part(r.topic, r.part)
		es := p.entriesFrom(r.next)
		grew := p.grew
		r.l.mu.Unlock()
		if len(es) > 0 {
			r.next = es[0].End()
			return es[0], nil
		}
		select {
		case <-ctx.Done():
			return broker.Entry{}, ctx.Err()
		case <-grew:
		}
	}
}

func (r *memReader) Close() error {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	r.l.readers[r.topic]--
	return nil
}

func (l *memLog) Register(context.Context, string, string) error { return nil }

func (l *memLog) Progress(consumer, topic string, part int, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads[fmt.Sprintf("%s/%s/%d", consumer, topic, part)] = offset
}

// read returns consumer's last reported read position, -1 without one.
func (l *memLog) read(consumer, topic string, part int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o, ok := l.reads[fmt.Sprintf("%s/%s/%d", consumer, topic, part)]; ok {
		return o
	}
	return -1
}

func (l *memLog) commit(consumer, topic string, part int, offset int64, checkpoint string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commits[fmt.Sprintf("%s/%s/%d", consumer, topic, part)] = memCommit{offset, checkpoint}
}

func (l *memLog) committed(consumer, topic string, part int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits[fmt.Sprintf("%s/%s/%d", consumer, topic, part)].offset
}

func (l *memLog) CommittedCheckpoint(_ context.Context, consumer, topic string, part int) (int64, string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.commits[fmt.Sprintf("%s/%s/%d", consumer, topic, part)]
	return c.offset, c.checkpoint, ok, nil
}

// Purge keeps every entry: the memory log has no retention.
func (l *memLog) Purge(context.Context, string, int, int64) error { return nil }

func (l *memLog) DeleteCheckpoint(_ context.Context, bucket, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.checkpoints, bucket+"/"+name)
	return nil
}

// memOwner owns every partition of every consumer, as a process alone
// does, with leases that commit into the memory log.
type memOwner struct {
	l     *memLog
	epoch uint64
}

func (o *memOwner) Own(consumer string, topics []string, run func(context.Context, Lease) error) (Stopper, error) {
	parts := 1
	for _, t := range topics {
		parts = max(parts, len(o.l.parts[t]))
	}
	o.epoch++
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := range parts {
		l := &memLease{l: o.l, consumer: consumer, part: p, epoch: o.epoch}
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := run(ctx, l); err != nil && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	return stopFunc(func() { cancel(); wg.Wait() }), nil
}

type stopFunc func()

func (f stopFunc) Stop() { f() }

type memLease struct {
	l        *memLog
	consumer string
	part     int
	epoch    uint64
}

func (m *memLease) Partition() int { return m.part }
func (m *memLease) Epoch() uint64  { return m.epoch }
func (m *memLease) Valid() bool    { return true }

func (m *memLease) Committed(topic string) (int64, string, bool) {
	off, ck, ok, _ := m.l.CommittedCheckpoint(context.Background(), m.consumer, topic, m.part)
	return off, ck, ok
}

func (m *memLease) Commit(_ context.Context, topic string, offset, _ int64, checkpoint string) error {
	m.l.commit(m.consumer, topic, m.part, offset, checkpoint)
	return nil
}

func (l *memLog) LoadCheckpoint(_ context.Context, bucket, name string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.checkpoints[bucket+"/"+name]
	return slices.Clone(d), ok, nil
}

func (l *memLog) SaveCheckpoint(_ context.Context, bucket, name string, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkpoints[bucket+"/"+name] = slices.Clone(data)
	l.saves++
	return nil
}

func (l *memLog) checkpointsSaved() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saves
}

// viewRows returns the rows of a view's log topic by group (groupText), in
// the order they were appended: a group's rows are all in one partition.
func (l *memLog) viewRows(p *pipelines.Pipeline, view string) map[string][]viewrow.Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := p.ViewByName(view)
	out := map[string][]viewrow.Row{}
	for _, part := range l.parts[v.Name] {
		for _, e := range part.entries {
			for _, ev := range e.Events {
				r, ok := viewrow.FromValues(ev.Values, len(v.GroupBy), len(v.Aggregates))
				if !ok {
					panic(fmt.Sprintf("view %s: a row of %d values", view, len(ev.Values)))
				}
				g := groupText(r.Group)
				out[g] = append(out[g], r)
			}
		}
	}
	return out
}
