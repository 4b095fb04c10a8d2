// Command lambdaflow runs Lambdaflow pipelines and talks to running ones.
//
// main only wires the process to the CLI: signals, standard streams and the
// environment. Everything else is in the packages it imports.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.LookupEnv)
	stop()
	os.Exit(code)
}
