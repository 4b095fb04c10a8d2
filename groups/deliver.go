package groups

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Bounds of one delivery.
const (
	defaultMax   = 500
	maxMax       = 10_000
	maxWait      = 30 * time.Second
	deliverBytes = 4 << 20 // log bytes read per poll, at most (about)
)

// poll delivers up to limit events of the member's partitions from their
// delivery positions, waiting up to wait for some when none is ready, and
// advances the positions of what it delivered. It counts as a heartbeat.
func (g *Groups) poll(ctx context.Context, group, id string, limit int, wait time.Duration) ([]api.GroupEvent, *state, error) {
	s, m, err := g.touch(ctx, group, id)
	if err != nil {
		return nil, nil, err
	}
	pos := map[tp]int64{}
	for _, p := range m.Assigned {
		if o, ok := s.Positions[p.key()]; ok {
			pos[p] = o
			continue
		}
		if pos[p], err = g.start(ctx, group, p, m.Reset); err != nil {
			return nil, nil, err
		}
	}
	deadline := time.Now().Add(wait)
	var out []api.GroupEvent
	var parts []broker.Part
	for _, p := range m.Assigned {
		parts = append(parts, broker.Part{Topic: p.Topic, Partition: p.Partition})
	}
	for {
		var watch *broker.Watch
		if wait > 0 && len(parts) > 0 {
			watch, _ = g.log.Appended(parts...) // without one, the wait is the deadline
		}
		out, err = g.read(ctx, m.Assigned, pos, limit)
		if err != nil || len(out) > 0 || wait <= 0 || !time.Now().Before(deadline) {
			watch.Release()
			break
		}
		woke := watch.Wait(ctx, deadline)
		watch.Release()
		if !woke {
			break
		}
	}
	if err != nil || len(out) == 0 {
		return out, s, err
	}
	// Advance the positions, if the member still owns the partitions.
	gen := s.Generation
	s, err = g.update(ctx, group, func(s *state, now int64) (bool, error) {
		m := s.member(id)
		if m == nil || s.Generation != gen {
			return false, nil // rebalanced meanwhile: the new owner starts from the commit
		}
		if s.Positions == nil {
			s.Positions = map[string]int64{}
		}
		for _, p := range m.Assigned {
			s.Positions[p.key()] = pos[p]
		}
		m.Seen = now
		return true, nil
	})
	if err == nil {
		g.metrics.delivered.WithLabelValues(group).Add(float64(len(out)))
	}
	return out, s, err
}

// start is where a partition without a delivery position starts: the
// group's committed position, else the reset policy's end of the log.
func (g *Groups) start(ctx context.Context, group string, p tp, reset string) (int64, error) {
	off, ok, err := g.log.Committed(ctx, ConsumerName(group), p.Topic, p.Partition)
	if err != nil || ok {
		return off, err
	}
	bd, err := g.log.Bounds(ctx, p.Topic, p.Partition)
	if reset == "latest" {
		return bd.End, err
	}
	return bd.Start, err
}

// read reads the partitions from pos on, at most max events in all,
// advancing pos.
func (g *Groups) read(ctx context.Context, parts []tp, pos map[tp]int64, limit int) ([]api.GroupEvent, error) {
	var out []api.GroupEvent
	for _, p := range parts {
		if len(out) >= limit {
			break
		}
		entries, bd, err := g.log.FetchFrom(ctx, p.Topic, p.Partition, pos[p], nil, limit-len(out), deliverBytes)
		if errors.Is(err, broker.ErrOffsetOutOfRange) {
			// Retention removed the position (or it was ahead): go on from
			// the first event held (or the end).
			pos[p] = min(max(pos[p], bd.Start), bd.End)
			entries, _, err = g.log.FetchFrom(ctx, p.Topic, p.Partition, pos[p], nil, limit-len(out), deliverBytes)
		}
		if err != nil {
			return nil, err
		}
		schema := g.topics[p.Topic].Schema
		for _, e := range entries {
			for i := range e.Events {
				ev := &e.Events[i]
				out = append(out, api.GroupEvent{Topic: p.Topic, Partition: p.Partition, Offset: e.Offset + int64(i), ID: ev.ID,
					Value: json.RawMessage(event.AppendEventJSON(nil, schema, ev.Values))})
			}
			pos[p] = e.End()
		}
	}
	return out, nil
}
