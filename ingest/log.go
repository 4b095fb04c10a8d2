package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// BrokerLog adapts a broker to the Log ingest writes to.
func BrokerLog(b *broker.Broker) Log { return brokerLog{b} }

type brokerLog struct{ b *broker.Broker }

var _ Log = brokerLog{}

func (l brokerLog) Append(ctx context.Context, topic string, partition int, events []event.Event) (int64, error) {
	return l.b.Append(ctx, topic, partition, events)
}

// Recent reads from the first entry stored at or after since, or from the
// last `last` events if that is later, up to the end offset the partition
// had when it was called.
func (l brokerLog) Recent(ctx context.Context, topic string, partition int, since time.Time, last int64, fn func(ev *event.Event, offset int64) error) error {
	infos, err := l.b.Topics(ctx)
	if err != nil {
		return err
	}
	end := int64(-1)
	for _, ti := range infos {
		if ti.Name == topic && partition < len(ti.Partitions) {
			end = ti.Partitions[partition].EndOffset
		}
	}
	if end < 0 {
		return fmt.Errorf("%w: %q partition %d", broker.ErrUnknownTopic, topic, partition)
	}
	// A Reader waits for entries past the end, so find out first whether
	// anything was stored since then.
	first, err := l.b.Fetch(ctx, topic, partition, broker.FromTime(since), 1)
	if err != nil || len(first) == 0 {
		return err
	}
	from := max(first[0].Offset, end-last)
	if from >= end {
		return nil
	}
	r, err := l.b.Reader(ctx, topic, partition, broker.FromOffset(from))
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		e, err := r.Next(ctx)
		if err != nil {
			return err
		}
		for i := range e.Events {
			off := e.Offset + int64(i)
			if off >= end {
				return nil
			}
			if err := fn(&e.Events[i], off); err != nil {
				return err
			}
		}
		if e.End() >= end {
			return nil
		}
	}
}
