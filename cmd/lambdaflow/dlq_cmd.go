package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
)

// dlqCmd lists or replays a sink's dead letters.
func dlqCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprintln(std.err, "usage: lambdaflow dlq list|replay SINK")
		return errUsage
	}
	verb := args[0]
	fs := newFlags("dlq "+verb, "SINK", std)
	conn := clientFlags(fs, env)
	limit := fs.Int("limit", 100, "list: most dead letters to show")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args[1:], 1, 1)
	if err != nil {
		return err
	}
	c := conn()
	if verb == "replay" {
		ans, err := c.Replay(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(std.out, "replayed %d dead letters of %s; %d failed again and are back in the dead-letter topic\n", ans.Replayed, pos[0], ans.Failed)
		if ans.Failed > 0 {
			return &exitError{code: 1}
		}
		return nil
	}
	if *asJSON {
		return printRaw(ctx, c, std.out, "/v1/sinks/"+url.PathEscape(pos[0])+"/dlq", url.Values{"limit": {strconv.Itoa(*limit)}})
	}
	ans, err := c.DeadLetters(ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ-OFFSET\tTIME\tSOURCE\tPARTITION\tOFFSET\tERROR\tRECORD")
	for _, d := range ans.DeadLetters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", d.DLQOffset, d.Time.UTC().Format(time.RFC3339), d.Source, d.Partition, d.Offset, d.Error, d.Record)
	}
	return tw.Flush()
}
