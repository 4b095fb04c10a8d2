package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// moves is one round of partition moves of a consumer: how long after a
// fault or a change the partitions were where they belong, as GET
// /v1/cluster shows them.
type moves struct {
	kill, join, stop time.Duration
}

// measureMoves runs 3 workers of c on a copy of the backlog (busy catching
// up, as in production after a fault) until each owns a share, then:
// kills one with SIGKILL and times until the other two own every partition;
// starts a fourth and times, from its process start, until it owns a share
// and every partition is owned; stops one softly (SIGTERM) and times until
// the others own its partitions.
func (b *bench) measureMoves(ctx context.Context, c consumer, round int) (m moves, err error) {
	st, err := b.newStage(ctx, c, fmt.Sprintf("moves%d-%s", round+1, c.name))
	if err != nil {
		return m, err
	}
	defer st.close()
	workers, groups, _, err := b.startWorkers(ctx, c, 3, 0, st.dir, st.env)
	defer func() {
		for _, g := range groups {
			if rerr := g.remove(); err == nil && rerr != nil {
				err = rerr
			}
		}
	}()
	defer func() { stopAll(workers) }()
	if err != nil {
		return m, err
	}
	settled := func(ws ...*measure.Server) func() error {
		return func() error { return owned(ctx, st.obs, c.consumer, ws) }
	}
	if _, err := poll(ctx, time.Now(), settled(workers...)); err != nil {
		return m, fmt.Errorf("3 workers: %w", err)
	}

	dead := workers[2]
	t0 := time.Now()
	dead.Kill()
	workers = workers[:2]
	if m.kill, err = poll(ctx, t0, settled(workers...)); err != nil {
		return m, fmt.Errorf("after kill -9: %w", err)
	}

	joined, jgroups, t0, err := b.startWorkers(ctx, c, 1, 3, st.dir, st.env)
	groups = append(groups, jgroups...)
	workers = append(workers, joined...)
	if err != nil {
		return m, err
	}
	if m.join, err = poll(ctx, t0, settled(workers...)); err != nil {
		return m, fmt.Errorf("after a join: %w", err)
	}

	t0 = time.Now()
	if err := workers[0].Stop(); err != nil {
		return m, err
	}
	workers = workers[1:]
	if m.stop, err = poll(ctx, t0, settled(workers...)); err != nil {
		return m, fmt.Errorf("after a soft stop: %w", err)
	}
	return m, nil
}

// poll calls f every 100 ms until it returns nil, and returns the time
// since t0 then; at most a minute.
func poll(ctx context.Context, t0 time.Time, f func() error) (time.Duration, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// owned reports whether every partition of consumer is owned, each by one
// node, the nodes being exactly the workers ws, each with a share.
func owned(ctx context.Context, obs *measure.Server, consumer string, ws []*measure.Server) error {
	var cl struct {
		Nodes []struct {
			ID   string           `json:"id"`
			Owns map[string][]int `json:"owns"`
		} `json:"nodes"`
	}
	if err := obs.GetJSON(ctx, "/v1/cluster", &cl); err != nil {
		return err
	}
	var got []int
	shares := map[*measure.Server]int{}
	for _, n := range cl.Nodes {
		parts := n.Owns[consumer]
		if len(parts) == 0 {
			continue
		}
		w := workerOf(n.ID, ws)
		if w == nil {
			return fmt.Errorf("node %s, not a live worker, owns %v", n.ID, parts)
		}
		shares[w] += len(parts)
		got = append(got, parts...)
	}
	slices.Sort(got)
	if len(got) != partitions || len(slices.Compact(slices.Clone(got))) != partitions {
		return fmt.Errorf("partitions owned %v, want each of %d once", got, partitions)
	}
	if len(shares) != len(ws) {
		return fmt.Errorf("%d of %d workers own a share", len(shares), len(ws))
	}
	return nil
}

// workerOf finds the worker a node id names: ids hold the process's HTTP
// port (<host>-<port>-<suffix>).
func workerOf(id string, ws []*measure.Server) *measure.Server {
	for _, w := range ws {
		u, err := url.Parse(w.URL)
		if err == nil && strings.Contains(id, "-"+u.Port()+"-") {
			return w
		}
	}
	return nil
}

// movesTable prints the medians of the moves per consumer.
func movesTable(w io.Writer, o options, all map[string][]moves) {
	fmt.Fprintln(w, "| consumer | worker killed (-9) → its partitions owned by the other two | worker joined → it owns a share (from its process start) | worker stopped (SIGTERM) → its partitions owned by the others |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, c := range o.consumers {
		ms := all[c.name]
		col := func(f func(moves) time.Duration) string {
			var xs []float64
			var each []string
			for _, m := range ms {
				xs = append(xs, f(m).Seconds())
				each = append(each, fmt.Sprintf("%.1f", f(m).Seconds()))
			}
			return fmt.Sprintf("%.1f s (%s)", measure.Median(xs), strings.Join(each, " / "))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.consumer,
			col(func(m moves) time.Duration { return m.kill }), col(func(m moves) time.Duration { return m.join }),
			col(func(m moves) time.Duration { return m.stop }))
	}
}
