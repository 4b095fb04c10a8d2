package main

import (
	"context"
	"fmt"

	"github.com/lambdaflow/lambdaflow/sinks/all"

	"github.com/lambdaflow/lambdaflow/pipetest"
)

// testCmd runs pipeline test files: events in, view rows out, in process.
func testCmd(ctx context.Context, args []string, std stdio, _ lookupEnv) error {
	fs := newFlags("test", "FILE…", std)
	files, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	failed, err := pipetest.Run(ctx, files, all.Types(), std.out)
	if err != nil {
		return err
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d failed", failed)}
	}
	return nil
}
