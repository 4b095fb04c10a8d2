package speed

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Log is what the speed layer needs of the log. BrokerLog adapts a
// *broker.Broker. All methods must be safe for concurrent use; errors
// wrapping broker.ErrUnavailable are retried, others stop the view.
type Log interface {
	// Read opens a reader of topic's partition from offset from (or the
	// first event still held, if retention removed it). The reader follows
	// the log: Next waits for entries appended later.
	Read(ctx context.Context, topic string, part int, from int64) (EntryReader, error)
	// Fetch returns the entries of topic's partition from offset from on,
	// holding at most max events, without waiting for new ones; none at
	// the end of the log.
	Fetch(ctx context.Context, topic string, part int, from int64, max int) ([]broker.Entry, error)
	// End returns the offset the next event appended to topic's partition
	// will get, as the log holds it now (whoever appends, in any process).
	End(ctx context.Context, topic string, part int) (int64, error)
	// Append writes events as one entry of topic's partition and returns
	// the offset of the first once it is durable.
	Append(ctx context.Context, topic string, part int, events []event.Event) (int64, error)
	// Register makes consumer show in the lag of every partition of topic.
	Register(ctx context.Context, consumer, topic string) error
	// CommittedCheckpoint returns consumer's last commit of a partition:
	// its offset and the checkpoint it names; ok is false before the first.
	CommittedCheckpoint(ctx context.Context, consumer, topic string, part int) (offset int64, checkpoint string, ok bool, err error)
	// Purge removes the entries of a partition that hold only events
	// before offset (never the last one).
	Purge(ctx context.Context, topic string, part int, before int64) error
	// Progress reports how far consumer has read a partition (the next
	// offset) between commits, for lag; it must not block.
	Progress(consumer, topic string, part int, offset int64)
	// LoadCheckpoint returns the object name of bucket; ok is false when
	// there is none.
	LoadCheckpoint(ctx context.Context, bucket, name string) (data []byte, ok bool, err error)
	// SaveCheckpoint replaces the object name of bucket atomically: a
	// later LoadCheckpoint returns either the old or the new data whole,
	// whatever happens during the call.
	SaveCheckpoint(ctx context.Context, bucket, name string, data []byte) error
	// DeleteCheckpoint removes the object name of bucket, if there is one.
	DeleteCheckpoint(ctx context.Context, bucket, name string) error
}

// Lease is this process's ownership of partition p of a view: source
// partition p and partition p of the view's partials topic
// (*broker.Lease). Commits are fenced: once another process has taken the
// partition, Commit fails (broker.ErrFenced) and the work must stop.
type Lease interface {
	Partition() int
	Epoch() uint64
	Committed(topic string) (offset int64, checkpoint string, ok bool)
	Commit(ctx context.Context, topic string, offset, eventTime int64, checkpoint string) error
	Valid() bool
}

// Owner runs work for the partitions of a consumer that this process owns
// among the processes running it; BrokerOwner adapts a *broker.Node.
type Owner interface {
	Own(consumer string, topics []string, run func(context.Context, Lease) error) (Stopper, error)
}

// Stopper ends what Owner.Own started.
type Stopper interface{ Stop() }

// BrokerOwner adapts a cluster node to Owner.
func BrokerOwner(n *broker.Node) Owner { return nodeOwner{n} }

type nodeOwner struct{ n *broker.Node }

func (o nodeOwner) Own(consumer string, topics []string, run func(context.Context, Lease) error) (Stopper, error) {
	return o.n.Own(consumer, topics, func(ctx context.Context, l *broker.Lease) error { return run(ctx, l) })
}

// EntryReader reads one partition in order.
type EntryReader interface {
	// Next returns the next entry, waiting for one; ctx.Err() when ctx
	// ends first, broker.ErrClosed once the log is closed.
	Next(ctx context.Context) (broker.Entry, error)
	Close() error
}

// BrokerLog adapts a broker to Log. Checkpoints go to JetStream object
// stores of the broker (one bucket per pipeline, objects per view
// partition).
func BrokerLog(b *broker.Broker) Log {
	return &brokerLog{b: b, stores: map[string]*broker.ObjectStore{}}
}

type brokerLog struct {
	b      *broker.Broker
	mu     sync.Mutex
	stores map[string]*broker.ObjectStore
}

func (l *brokerLog) Read(ctx context.Context, topic string, part int, from int64) (EntryReader, error) {
	r, err := l.b.ReaderAhead(ctx, topic, part, broker.FromOffset(from), readAhead)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (l *brokerLog) Fetch(ctx context.Context, topic string, part int, from int64, max int) ([]broker.Entry, error) {
	return l.b.Fetch(ctx, topic, part, broker.FromOffset(from), max)
}

func (l *brokerLog) End(ctx context.Context, topic string, part int) (int64, error) {
	bd, err := l.b.Bounds(ctx, topic, part)
	return bd.End, err
}

func (l *brokerLog) Append(ctx context.Context, topic string, part int, events []event.Event) (int64, error) {
	return l.b.Append(ctx, topic, part, events)
}

func (l *brokerLog) Register(ctx context.Context, consumer, topic string) error {
	return l.b.Register(ctx, consumer, topic)
}

func (l *brokerLog) CommittedCheckpoint(ctx context.Context, consumer, topic string, part int) (int64, string, bool, error) {
	return l.b.CommittedCheckpoint(ctx, consumer, topic, part)
}

func (l *brokerLog) Purge(ctx context.Context, topic string, part int, before int64) error {
	return l.b.Purge(ctx, topic, part, before)
}

func (l *brokerLog) DeleteCheckpoint(ctx context.Context, bucket, name string) error {
	s, err := l.store(ctx, bucket)
	if err != nil {
		return err
	}
	return s.Delete(ctx, name)
}

func (l *brokerLog) Progress(consumer, topic string, part int, offset int64) {
	l.b.Progress(consumer, topic, part, offset)
}

func (l *brokerLog) store(ctx context.Context, bucket string) (*broker.ObjectStore, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.stores[bucket]; s != nil {
		return s, nil
	}
	s, err := l.b.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	l.stores[bucket] = s
	return s, nil
}

func (l *brokerLog) LoadCheckpoint(ctx context.Context, bucket, name string) ([]byte, bool, error) {
	s, err := l.store(ctx, bucket)
	if err != nil {
		return nil, false, err
	}
	data, err := s.Get(ctx, name)
	if errors.Is(err, broker.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: load checkpoint %s/%s: %w", broker.ErrUnavailable, bucket, name, err)
	}
	return data, true, nil
}

func (l *brokerLog) SaveCheckpoint(ctx context.Context, bucket, name string, data []byte) error {
	s, err := l.store(ctx, bucket)
	if err != nil {
		return err
	}
	// A reader sees the old checkpoint or the new one, never a mix (see
	// broker.ObjectStore.Put).
	if err := s.Put(ctx, name, data); err != nil {
		return fmt.Errorf("%w: save checkpoint %s/%s: %w", broker.ErrUnavailable, bucket, name, err)
	}
	return nil
}
