package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// clientFlags adds --addr and --token to fs; defaults come from
// LAMBDAFLOW_ADDR and LAMBDAFLOW_TOKEN. The client commands talk to a
// running lambdaflow over its HTTP API, exactly as a user's program would:
// the CLI has no back door into the process.
func clientFlags(fs *flag.FlagSet, env lookupEnv) func() *client.Client {
	addr := fs.String("addr", envOr(env, "LAMBDAFLOW_ADDR", "http://127.0.0.1:8080"), "address of a running lambdaflow (env LAMBDAFLOW_ADDR)")
	token := fs.String("token", envOr(env, "LAMBDAFLOW_TOKEN", ""), "bearer token (env LAMBDAFLOW_TOKEN)")
	return func() *client.Client { return client.New(*addr, *token, nil) }
}

func envOr(env lookupEnv, key, def string) string {
	if v, ok := env(key); ok && v != "" {
		return v
	}
	return def
}

// printRaw GETs path and prints the answer's JSON, indented, to w: what
// --json shows.
func printRaw(ctx context.Context, c *client.Client, w io.Writer, path string, q url.Values) error {
	var raw json.RawMessage
	if err := c.Get(ctx, path, q, &raw); err != nil {
		return err
	}
	return printJSON(w, raw)
}

// timeFlags parses the --from and --to flags (RFC 3339; empty is zero).
func timeFlags(from, to string) (time.Time, time.Time, error) {
	var out [2]time.Time
	for i, p := range [...]struct{ name, v string }{{"from", from}, {"to", to}} {
		if p.v == "" {
			continue
		}
		t, err := httpapi.ParseTime(p.v)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time", p.name, p.v)
		}
		out[i] = t
	}
	return out[0], out[1], nil
}

// printJSON writes raw JSON to w, indented, with a newline.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
