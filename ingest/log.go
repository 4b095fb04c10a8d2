package ingest

import (
	"context"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// BrokerLog adapts a broker to the Log ingest writes to.
func BrokerLog(b *broker.Broker) Log { return brokerLog{b} }

type brokerLog struct{ b *broker.Broker }

var _ Log = brokerLog{}

func (l brokerLog) AppendUnique(ctx context.Context, topic string, partition int, events []event.Event, unique []bool) ([]broker.Placement, error) {
	return l.b.AppendUnique(ctx, topic, partition, events, unique)
}

func (l brokerLog) PrepareDedup(ctx context.Context, topic string, partition int) error {
	return l.b.PrepareDedup(ctx, topic, partition)
}
