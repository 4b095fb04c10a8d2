package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
)

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// lookupEnv is os.LookupEnv, injected so tests control the environment.
type lookupEnv func(string) (string, bool)

// errUsage marks a command-line mistake; the command's usage has been printed.
var errUsage = errors.New("usage")

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, io stdio, env lookupEnv) error
}

func commands() []command {
	return []command{
		{"run", "[-c FILE] [--role ROLES]", "run the pipeline: all roles in one process, or the ones named", runCmd},
		{"validate", "FILE…", "check pipeline files; non-zero exit on any error", validateCmd},
		{"schema", "", "print the JSON Schema of the pipeline file", schemaCmd},
		{"test", "FILE…", "run a pipeline's test cases (events in, view rows out)", testCmd},
		{"topics", "[--json]", "list topics with partitions, offsets and sizes", topicsCmd},
		{"lag", "[--json]", "show every consumer's lag per partition, in events and seconds", lagCmd},
		{"cluster", "[--json]", "show the pipeline's processes, their roles and the partitions each owns", clusterCmd},
		{"produce", "TOPIC", "publish NDJSON events from standard input", produceCmd},
		{"tail", "TOPIC [--from OFFSET|TIME] [-f]", "print a topic's events", tailCmd},
		{"query", "VIEW [--where k=v] [--from T --to T]", "query a view", queryCmd},
		{"sql", `"SELECT …" [--format F]`, "read-only SQL over the lake, the views and the DuckDB sink", sqlCmd},
		{"batch", "run VIEW [--from T --to T]", "recompute a view from the lake now", batchCmd},
		{"dlq", "list|replay SINK", "list or replay a sink's dead letters", dlqCmd},
		{"top", "[-n N] [--once]", "live rates, lag, late events, jobs and sinks of a running process", topCmd},
		{"version", "", "print the version", versionCmd},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lambdaflow COMMAND [ARGS]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %-40s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'lambdaflow COMMAND -h' for a command's flags.")
}

// cli runs one command and returns the process exit code.
func cli(ctx context.Context, args []string, std stdio, env lookupEnv) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(std.err)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], std, env)
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &ee):
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintf(std.err, "lambdaflow %s: %v\n", c.name, ee.err)
			}
			return ee.code
		default:
			fmt.Fprintf(std.err, "lambdaflow %s: %v\n", c.name, err)
			return 1
		}
	}
	names := make([]string, 0, len(commands()))
	for _, c := range commands() {
		names = append(names, c.name)
	}
	sort.Strings(names)
	fmt.Fprintf(std.err, "lambdaflow: unknown command %q (commands: %s)\n", args[0], strings.Join(names, ", "))
	return 2
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, args string, std stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(std.err)
	fs.Usage = func() {
		fmt.Fprintf(std.err, "usage: lambdaflow %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("tail metrics --from 10"), which the standard flag package does not.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseArgs parses args as parseFlags does and checks that they hold at
// least min positional arguments, and at most max unless max is negative;
// otherwise it prints the usage and returns errUsage.
func parseArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < min || max >= 0 && len(pos) > max {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

func versionCmd(_ context.Context, args []string, std stdio, _ lookupEnv) error {
	fs := newFlags("version", "", std)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(std.out, "lambdaflow", version())
	return nil
}

// version reports the module version and VCS revision stamped by the Go toolchain.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev + modified + ")"
	}
	return v + " " + bi.GoVersion
}
