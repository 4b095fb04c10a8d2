package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// compactor merges the small files of one topic's lake: all live files of
// one hour and partition become one file. The manifest swap is the atomic
// step: a reader lists files from one manifest, so it reads either the old
// files or the merged one, never both and never neither. Replaced files are
// hidden at once (directory readers stop seeing them) and deleted after a
// grace period, and never while a reader in this process holds a manifest
// that lists them.
type compactor struct {
	tl      *topicLake
	logger  *slog.Logger
	now     func() time.Time
	cfg     pipelines.Compact
	grace   time.Duration
	metrics *metrics
	// parts are the partitions compacted; nil means all. Each process
	// writing the lake compacts the partitions it owns, under lease
	// (nil: no fencing, for tests), whose epoch its commits check as the
	// lake writer's do.
	parts []int
	lease *broker.Lease
}

// run compacts every cfg.Interval (by the injected clock, looked at every
// poll) until ctx is done.
func (c *compactor) run(ctx context.Context, poll time.Duration) error {
	if c.cfg.Interval <= 0 || c.cfg.MinFiles < 2 {
		return nil
	}
	next := c.now().Add(c.cfg.Interval.D())
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if c.now().Before(next) {
			continue
		}
		next = c.now().Add(c.cfg.Interval.D())
		if _, err := c.compact(ctx); err != nil && ctx.Err() == nil {
			c.logger.Error("lake: compaction failed", "topic", c.tl.topic.Name, "err", err)
		}
	}
}

// compact does one pass: merges every hour and partition with at least
// cfg.MinFiles live files, then deletes replaced files whose grace is over.
// It returns how many merges it made.
func (c *compactor) compact(ctx context.Context) (int, error) {
	m := c.tl.ms.snapshot()
	type group struct {
		hour int64
		part int
	}
	groups := map[group][]fileEntry{}
	for _, f := range m.Files {
		if c.parts != nil && !slices.Contains(c.parts, f.Partition) {
			continue
		}
		g := group{f.Hour, f.Partition}
		groups[g] = append(groups[g], f)
	}
	keys := make([]group, 0, len(groups))
	for g, fs := range groups {
		if len(fs) >= max(c.cfg.MinFiles, 2) {
			keys = append(keys, g)
		}
	}
	slices.SortFunc(keys, func(a, b group) int {
		if a.hour != b.hour {
			return cmp.Compare(a.hour, b.hour)
		}
		return a.part - b.part
	})
	n := 0
	for _, g := range keys {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := c.merge(ctx, groups[g]); err != nil {
			return n, err
		}
		n++
	}
	return n, c.purge()
}

// merge replaces files (one hour, one partition, sorted by offset) by one.
func (c *compactor) merge(ctx context.Context, files []fileEntry) error {
	sortFiles(files)
	first, last := files[0].First, files[len(files)-1].Last
	out := fileEntry{
		Path:      hourPath(files[0].Hour) + "/" + fileName(files[0].Partition, first, last),
		Hour:      files[0].Hour,
		Partition: files[0].Partition,
		First:     first, Last: last,
		MinTime: files[0].MinTime, MaxTime: files[0].MaxTime,
		Compacted: true,
	}
	for _, f := range files {
		out.Rows += f.Rows
		out.MinTime = min(out.MinTime, f.MinTime)
		out.MaxTime = max(out.MaxTime, f.MaxTime)
		// Recomputation finds late events by the version that brought
		// them; the merged file keeps the newest.
		out.Added = max(out.Added, f.Added)
	}
	final := c.tl.filePath(filepath.FromSlash(out.Path))
	fw, err := createFile(c.tl.ls, final)
	if err != nil {
		return err
	}
	for _, f := range files {
		err := c.tl.scanFile(ctx, f, scanOptions{}, func(b *scanBatch) error {
			for i := range b.Events {
				if err := fw.add(&b.Events[i], b.Parts[i], b.Offsets[i]); err != nil {
					return err
				}
			}
			// The batch's memory is reused for the next one.
			return fw.drain()
		})
		if err != nil {
			fw.abort()
			return fmt.Errorf("lake: compacting %s: %w", out.Path, err)
		}
	}
	if err := fw.finish(); err != nil {
		fw.abort()
		return err
	}
	if err := os.Rename(fw.tmp, final); err != nil {
		fw.abort()
		return fmt.Errorf("lake: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		os.Remove(final)
		return fmt.Errorf("lake: %w", err)
	}
	st, err := os.Stat(final)
	if err != nil {
		os.Remove(final)
		return fmt.Errorf("lake: %w", err)
	}
	out.Bytes, out.CRC32C = st.Size(), fw.sum.Sum32()
	now := c.now().Unix()
	_, err = c.tl.ms.update(func(m *manifest) error {
		if err := c.fenced(m, out.Partition); err != nil {
			return err
		}
		for _, f := range files {
			i := slices.IndexFunc(m.Files, func(x fileEntry) bool { return x.Path == f.Path })
			if i < 0 {
				return fmt.Errorf("lake: compacting %s: %s is no longer live", out.Path, f.Path)
			}
			m.Files = slices.Delete(m.Files, i, i+1)
			m.Replaced = append(m.Replaced, replacedEntry{Path: f.Path, Version: m.Version, At: now})
		}
		m.Files = append(m.Files, out)
		return nil
	})
	if err != nil {
		os.Remove(final)
		return err
	}
	// Out of the dataset now; hide them from directory readers. A crash
	// before this is finished by recovery.
	for _, f := range files {
		p := c.tl.filePath(filepath.FromSlash(f.Path))
		if err := os.Rename(p, replacedName(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("lake: hiding a replaced file", "file", p, "err", err)
		}
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		c.logger.Warn("lake: sync", "dir", filepath.Dir(final), "err", err)
	}
	c.metrics.compactions.WithLabelValues(c.tl.topic.Name).Inc()
	c.logger.Debug("lake: compacted", "topic", c.tl.topic.Name, "file", out.Path, "inputs", len(files), "rows", out.Rows)
	return nil
}

// fenced refuses a commit of a compactor whose partition moved on.
func (c *compactor) fenced(m *manifest, part int) error {
	if c.lease == nil {
		return nil
	}
	if ps := m.partition(part); ps.Epoch > c.lease.Epoch() || !c.lease.Valid() {
		return fmt.Errorf("%w: compaction of %s/%d: manifest committed by epoch %d, this process holds %d", errLost, c.tl.topic.Name, part, ps.Epoch, c.lease.Epoch())
	}
	return nil
}

// partitionOfPath reads the partition from a data file's name
// (…/p<partition>-<first>-<last>.parquet).
func partitionOfPath(path string) (int, bool) {
	name := filepath.Base(path)
	rest, ok := strings.CutPrefix(name, "p")
	if !ok {
		return 0, false
	}
	i := strings.IndexByte(rest, '-')
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:i])
	return n, err == nil
}

// purge deletes replaced files whose grace period is over and that no
// reader in this process still needs.
func (c *compactor) purge() error {
	m := c.tl.ms.snapshot()
	oldest := c.tl.ms.oldestPin()
	now := c.now()
	var gone []string
	for _, r := range m.Replaced {
		if now.Sub(time.Unix(r.At, 0)) < c.grace || (oldest >= 0 && oldest < r.Version) {
			continue
		}
		if part, ok := partitionOfPath(r.Path); c.parts != nil && (!ok || !slices.Contains(c.parts, part)) {
			continue
		}
		p := c.tl.filePath(filepath.FromSlash(r.Path))
		if err := os.Remove(replacedName(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lake: %w", err)
		}
		gone = append(gone, r.Path)
	}
	if len(gone) == 0 {
		return nil
	}
	_, err := c.tl.ms.update(func(m *manifest) error {
		m.Replaced = slices.DeleteFunc(m.Replaced, func(r replacedEntry) bool { return slices.Contains(gone, r.Path) })
		return nil
	})
	return err
}
