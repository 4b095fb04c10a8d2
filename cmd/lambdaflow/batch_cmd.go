package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/batch"
)

// batchCmd starts a recomputation on the running process and follows its
// progress: a bar on a terminal, plain lines otherwise.
func batchCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(std.err, "usage: lambdaflow batch run VIEW [--from T --to T]")
		return errUsage
	}
	fs := newFlags("batch run", "VIEW [--from T --to T]", std)
	conn := clientFlags(fs, env)
	from := fs.String("from", "", "first window start to recompute, RFC 3339 (default: all the lake holds)")
	to := fs.String("to", "", "recompute windows starting before this time, RFC 3339")
	detach := fs.Bool("detach", false, "start the job and print its id without waiting")
	pos, err := parseArgs(fs, args[1:], 1, 1)
	if err != nil {
		return err
	}
	fromT, toT, err := timeFlags(*from, *to)
	if err != nil {
		return err
	}
	c := conn()
	id, err := c.Recompute(ctx, pos[0], fromT, toT)
	if err != nil {
		return err
	}
	if *detach {
		fmt.Fprintln(std.out, id)
		return nil
	}
	term := isTerminal(std.out)
	var last api.JobStatus
	for {
		st, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if term || st.Done != last.Done || st.State != last.State {
			batch.RenderProgress(std.out, term, st)
		}
		last = st
		if st.Finished() {
			if term {
				fmt.Fprintln(std.out)
			}
			if st.Lake != "" {
				fmt.Fprintf(std.out, "lake: %s\n", st.Lake)
			}
			if st.State == api.JobFailed {
				return fmt.Errorf("job %s failed: %s", st.ID, st.Error)
			}
			if st.NothingToDo {
				fmt.Fprintf(std.out, "job %s succeeded with nothing to do: %s\n", st.ID, st.Note)
				return nil
			}
			fmt.Fprintf(std.out, "job %s succeeded: %d rows read, %d windows written\n", st.ID, st.Rows, st.Windows)
			if st.Note != "" {
				fmt.Fprintf(std.out, "note: %s\n", st.Note)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following job %s (it goes on): %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
