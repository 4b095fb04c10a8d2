package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

func topicsCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	return showCmd(ctx, args, std, env, "topics", "/v1/topics", (*client.Client).Topics, writeTopics)
}

// showCmd runs a command that shows one API resource: a table for people,
// or with --json the API's own bytes, so scripts see every field.
func showCmd[T any](ctx context.Context, args []string, std stdio, env lookupEnv, name, path string,
	get func(*client.Client, context.Context) (T, error), write func(io.Writer, T) error) error {
	fs := newFlags(name, "[--json]", std)
	conn := clientFlags(fs, env)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c := conn()
	if *asJSON {
		return printRaw(ctx, c, std.out, path, nil)
	}
	v, err := get(c, ctx)
	if err != nil {
		return err
	}
	return write(std.out, v)
}

// writeTopics prints every partition of every topic, with the topic's kind:
// "events" topics take publishing; a view's rows and a sink's dead letters
// are written by the pipeline, and a note under the table says why they
// refuse it.
func writeTopics(w io.Writer, topics []api.Topic) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tKIND\tPARTITION\tFIRST-OFFSET\tLAST-OFFSET\tEVENTS\tBYTES")
	for _, t := range topics {
		for _, p := range t.Partitions {
			n := int64(0)
			if p.LastOffset >= 0 {
				n = p.LastOffset - p.FirstOffset + 1
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", t.Name, t.Kind, p.Partition, p.FirstOffset, p.LastOffset, n, p.Bytes)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := true
	for _, t := range topics {
		if t.Publishable {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nPublishing is refused to:")
			first = false
		}
		fmt.Fprintf(w, "  %s: %s\n", t.Name, t.Refusal)
	}
	return nil
}

func lagCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	return showCmd(ctx, args, std, env, "lag", "/v1/lag", (*client.Client).Lag, writeLag)
}

// writeLag prints lag rows as the API orders them (worst first), with
// durations for people: OFFSET, LAG and LAG-TIME are the committed
// position (what a restart resumes from); READ-… is how far the consumer
// has read, ahead of its commits for the lake writer and the speed layer;
// EVENT-TIME-LAG is the age of the oldest uncommitted event by its own
// event time. --json has the exact seconds.
func writeLag(w io.Writer, lag []api.Lag) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tTOPIC\tPARTITION\tOFFSET\tEND-OFFSET\tLAG\tLAG-TIME\tREAD-OFFSET\tREAD-LAG\tREAD-LAG-TIME\tEVENT-TIME-LAG")
	for _, c := range lag {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n", c.Consumer, c.Topic, c.Partition, c.Offset, c.EndOffset,
			c.Lag, humanSeconds(c.LagSeconds), c.ReadOffset, c.ReadLag, humanSeconds(c.ReadLagSeconds), humanSeconds(c.EventTimeLagSeconds))
	}
	return tw.Flush()
}

// clusterCmd lists the live processes.
func clusterCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	return showCmd(ctx, args, std, env, "cluster", "/v1/cluster", (*client.Client).Cluster, writeCluster)
}

// writeCluster prints one line per process and consumer it owns
// partitions of; SEEN is how long ago the process last said it was alive.
func writeCluster(w io.Writer, c api.Cluster) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLES\tADDR\tSEEN\tCONSUMER\tPARTITIONS")
	for _, n := range c.Nodes {
		seen := time.Since(n.Seen).Round(100*time.Millisecond).String() + " ago"
		consumers := slices.Sorted(maps.Keys(n.Owns))
		if len(consumers) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\n", n.ID, strings.Join(n.Roles, ","), n.Addr, seen)
		}
		for i, cons := range consumers {
			id, roles, addr, ago := n.ID, strings.Join(n.Roles, ","), n.Addr, seen
			if i > 0 {
				id, roles, addr, ago = "", "", "", ""
			}
			parts := make([]string, len(n.Owns[cons]))
			for j, p := range n.Owns[cons] {
				parts[j] = strconv.Itoa(p)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, roles, addr, ago, cons, strings.Join(parts, ","))
		}
	}
	return tw.Flush()
}

// produceCmd sends NDJSON from stdin in batches. Each batch carries an
// Idempotency-Key, so a batch retried after a timeout or 503 lands once even
// when its events have no ids of their own.
func produceCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("produce", "TOPIC", std)
	conn := clientFlags(fs, env)
	batch := fs.Int("batch", 1000, "events per request")
	retries := fs.Int("retries", 10, "retries of a request answered 429/503")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *batch < 1 {
		return fmt.Errorf("--batch must be at least 1, got %d", *batch)
	}
	topic := pos[0]
	c := conn()
	run := make([]byte, 8)
	if _, err := rand.Read(run); err != nil {
		return err
	}
	runID := hex.EncodeToString(run)
	sc := bufio.NewScanner(std.in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var body bytes.Buffer
	var lines, sent, dups, seq int
	flush := func() error {
		if lines == 0 {
			return nil
		}
		key := runID + "-" + strconv.Itoa(seq)
		var ans api.IngestResult
		for attempt := 0; ; attempt++ {
			var err error
			ans, err = c.Publish(ctx, topic, body.Bytes(), "application/x-ndjson", key)
			if err == nil {
				break
			}
			wait, ok := client.Retryable(err)
			if !ok || attempt >= *retries {
				return fmt.Errorf("batch %d (input lines %d-%d): %w", seq, sent+dups+1, sent+dups+lines, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		sent += ans.Accepted
		dups += len(ans.Results) - ans.Accepted
		seq++
		lines = 0
		body.Reset()
		return nil
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		body.Write(line)
		body.WriteByte('\n')
		lines++
		if lines >= *batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(std.err, "produced %d events to %s (%d duplicates)\n", sent, topic, dups)
	return nil
}

// tailCmd prints a topic's events as NDJSON, oldest first per partition.
func tailCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("tail", "TOPIC [--from OFFSET|TIME] [-f]", std)
	conn := clientFlags(fs, env)
	from := fs.String("from", "", "start at this offset (in every partition), or at the events ingested at or after this RFC 3339 time (ingest time, not event time); default: the last 10 events of each partition")
	partition := fs.Int("partition", -1, "only this partition")
	follow := fs.Bool("f", false, "keep waiting for new events")
	limit := fs.Int("n", 0, "stop after this many events (0: no limit)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	sel := client.Browse{Limit: 1000}
	if *from != "" {
		if _, err := strconv.ParseInt(*from, 10, 64); err != nil {
			if _, err := httpapi.ParseTime(*from); err != nil {
				return fmt.Errorf("--from %q: want an offset or an RFC 3339 time", *from)
			}
		}
		sel.From = *from
	} else {
		sel.Last = 10
	}
	if *partition >= 0 {
		sel.Partition = partition
	}
	c := conn()
	// Each event as the server wrote it, one a line: no HTML escaping.
	enc := json.NewEncoder(std.out)
	enc.SetEscapeHTML(false)
	printed := 0
	for {
		ans, err := c.Events(ctx, pos[0], sel)
		if err != nil {
			return err
		}
		for _, e := range ans.Events {
			if err := enc.Encode(e); err != nil {
				return err
			}
			printed++
			if *limit > 0 && printed >= *limit {
				return nil
			}
		}
		if len(ans.Next) > 0 {
			sel.From, sel.Last, sel.Offsets = "", 0, ans.Next
		}
		if len(ans.Events) > 0 {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
