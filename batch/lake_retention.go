package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// maxExpireFiles bounds the files one retention commit takes out: its
// commit record lists them all (a year of hourly files at once when a
// retention is first set would be one record of ~0.5 MB).
const maxExpireFiles = 1000

// retainedFrom is the time (UTC µs) before which a period that ends is
// past the topic's lake.retention; ok is false when the lake keeps every
// event.
func (c *compactor) retainedFrom() (cutoff int64, ok bool) {
	keep := c.tl.topic.Lake.Retention.D()
	if keep <= 0 {
		return 0, false
	}
	return c.now().Add(-keep).UnixMicro(), true
}

// expire takes out of the dataset the files of the periods that ended the
// topic's lake.retention or longer ago (the injected clock), as a merge
// takes out its inputs: committed under the fence of the period's shard
// (the process that compacts the period expires it), hidden from directory
// readers at once, deleted by purge after the grace period. Readers
// holding a manifest that lists them keep reading them until they let go.
// A file a commit finds no longer live (merged meanwhile) leaves the
// period for the next pass. It returns how many files it took out.
func (c *compactor) expire(ctx context.Context, fences map[int]Fence) (int, error) {
	cutoff, retained := c.retainedFrom()
	if !retained {
		return 0, nil
	}
	m := c.tl.ms.snapshot()
	byShard := map[int][]fileEntry{}
	var shards []int
	for f := range m.all() {
		if f.Start >= cutoff {
			break // files are in period order: the rest are newer
		}
		if f.End > cutoff {
			continue
		}
		shard := c.tl.shard(f.Start)
		if !c.mine(fences, shard) {
			continue // expired by the process that compacts it
		}
		if _, ok := byShard[shard]; !ok {
			shards = append(shards, shard)
		}
		byShard[shard] = append(byShard[shard], *f)
	}
	slices.Sort(shards)
	n := 0
	for _, shard := range shards {
		files := byShard[shard]
		for len(files) > 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			batch := files[:min(len(files), maxExpireFiles)]
			files = files[len(batch):]
			err := c.expireFiles(ctx, shard, batch, fences[shard])
			if errors.Is(err, errStale) {
				c.logger.Debug("lake: retention skipped files that changed", "topic", c.tl.topic.Name, "err", err)
				continue
			}
			if err != nil {
				return n, err
			}
			n += len(batch)
		}
	}
	return n, nil
}

// expireFiles commits files out of the dataset and hides them. A commit
// whose outcome is unknown is an error: the next pass finds the files
// still live and takes them out, or finds them gone (purge deletes them
// by both names, hidden or not).
func (c *compactor) expireFiles(ctx context.Context, shard int, files []fileEntry, fence Fence) error {
	_, err := c.tl.ms.commit(ctx, func(m *manifest) (*delta, error) {
		if err := fenced(m.partition(shard), fence, c.tl.topic.Name); err != nil {
			return nil, err
		}
		d := &delta{}
		for _, f := range files {
			if !m.isLive(f.Path) {
				return nil, fmt.Errorf("%w: %s is no longer live", errStale, f.Path)
			}
			d.Remove = append(d.Remove, f.Path)
		}
		return d, nil
	})
	if err != nil {
		return fmt.Errorf("lake: retention of topic %s: %w", c.tl.topic.Name, err)
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, f := range files {
		c.hide(hctx, f.Path)
		c.tl.cache.drop(c.tl.key(f.Path), f)
	}
	c.metrics.expired.WithLabelValues(c.tl.topic.Name).Add(float64(len(files)))
	c.logger.Info("lake: retention took files out", "topic", c.tl.topic.Name, "files", len(files),
		"retention", c.tl.topic.Lake.Retention.D().String())
	return nil
}
