package batch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// durableWait bounds how long a recompute waits for the lake writers to
// make the log durable up to its end before it computes what the lake holds.
const durableWait = 30 * time.Second

// errNoLakeWriter is returned by makeDurable when the writers of the
// partitions behind do not run in this process.
var errNoLakeWriter = errors.New("the lake writer does not run in this process")

// makeDurable makes the topic's lake hold the log up to the log's end as
// of now: each partition writer behind it flushes what it read and reads on
// to that end. It says what it did: how many events it made durable, or
// why there was nothing to do.
func (b *Batch) makeDurable(ctx context.Context, tl *topicLake) (string, error) {
	topic := tl.topic.Name
	if b.log == nil {
		return "", errors.New("no log to read the end offsets from")
	}
	infos, err := b.log.Topics(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the log's end offsets: %w", err)
	}
	ends := map[int]int64{}
	for _, ti := range infos {
		if ti.Name == topic {
			for _, pi := range ti.Partitions {
				ends[pi.Partition] = pi.EndOffset
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, durableWait)
	defer cancel()
	tw := b.writers[topic]
	m := tl.ms.snapshot()
	var behind int64
	var elsewhere []int
	mine := map[int]int64{}
	for p := range tl.topic.Partitions {
		end, next := ends[p], m.partition(p).Next
		if next >= end {
			continue
		}
		behind += end - next
		if tw == nil || tw.fenceOf(p) == nil {
			elsewhere = append(elsewhere, p)
			continue
		}
		mine[p] = end
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	if behind == 0 {
		return fmt.Sprintf("the lake already held topic %s up to the log's end (%d events)", topic, total), nil
	}
	if len(mine) == 0 {
		return "", fmt.Errorf("%w: %d events of topic %s are in the log but not yet in the lake", errNoLakeWriter, behind, topic)
	}
	if err := tw.flushUpTo(wctx, mine); err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return "", fmt.Errorf("the lake writer did not reach the log's end within %s (%d events of topic %s were behind)", durableWait, behind, topic)
		}
		return "", err
	}
	if len(elsewhere) > 0 {
		// Their writers run in other processes: their events become
		// durable at those writers' roll.
		return fmt.Sprintf("made the partitions of topic %s written here durable up to the log's end; partitions %v are written by other processes and become durable at their roll (lake.roll)", topic, elsewhere), nil
	}
	return fmt.Sprintf("made %d events of topic %s durable in the lake, up to the log's end (%d events)", behind, topic, total), nil
}

// flushUpTo waits until this process's readers of the partitions in until
// have read up to their offsets, then flushes the buffer, and checks that
// the manifest holds them. It polls the readers every poll interval until
// ctx ends.
func (tw *topicWriter) flushUpTo(ctx context.Context, until map[int]int64) error {
	t := time.NewTicker(tw.poll)
	defer t.Stop()
	for !tw.readUpTo(until) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := tw.flush(ctx); err != nil {
		return err
	}
	m := tw.tl.ms.snapshot()
	for p, end := range until {
		if next := m.partition(p).Next; next < end {
			return fmt.Errorf("the lake holds partition %d of topic %s up to offset %d, not %d: the partition moved to another process", p, tw.tl.topic.Name, next, end)
		}
	}
	return nil
}

// readUpTo reports whether the readers of the partitions in until have
// read up to their offsets; a partition no longer read here has not.
func (tw *topicWriter) readUpTo(until map[int]int64) bool {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	for p, end := range until {
		if pw := tw.parts[p]; pw == nil || pw.end < end {
			return false
		}
	}
	return true
}
