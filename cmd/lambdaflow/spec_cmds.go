package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/lambdaflow/lambdaflow/sinks/all"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipetest"
)

// validateCmd checks every file and reports every error of each, so one run
// shows all that needs fixing. Pipeline test files (pipelines/examples/
// *.test.yaml beside the pipelines, so a glob catches both) are checked as
// test files: their format, their pipeline, their events and expectations,
// without running the cases.
func validateCmd(_ context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("validate", "FILE…", std)
	files, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && pipetest.IsTestFile(data) {
			n, err := pipetest.Check(f, all.Types())
			if err != nil {
				failed++
				fmt.Fprintln(std.err, err)
				continue
			}
			fmt.Fprintf(std.out, "%s: ok (test file, %d cases; run them with lambdaflow test)\n", f, n)
			continue
		}
		if _, err := pipelines.Load(f, env, all.Types()); err != nil {
			failed++
			var errs pipelines.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(std.err, e)
				}
				continue
			}
			fmt.Fprintf(std.err, "%s: %v\n", f, err)
			continue
		}
		fmt.Fprintf(std.out, "%s: ok\n", f)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d files invalid", failed, len(files))}
	}
	return nil
}

func schemaCmd(_ context.Context, args []string, std stdio, _ lookupEnv) error {
	fs := newFlags("schema", "", std)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := pipelines.JSONSchema(all.Types())
	if err != nil {
		return err
	}
	_, err = std.out.Write(append(s, '\n'))
	return err
}
