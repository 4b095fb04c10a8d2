package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client talks to a running lambdaflow over its HTTP API, exactly as a
// user's script would: the CLI has no back door into the process.
type client struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags adds --addr and --token to fs; defaults come from
// LAMBDAFLOW_ADDR and LAMBDAFLOW_TOKEN.
func clientFlags(fs *flag.FlagSet, env lookupEnv) func() *client {
	addr := fs.String("addr", envOr(env, "LAMBDAFLOW_ADDR", "http://127.0.0.1:8080"), "address of a running lambdaflow (env LAMBDAFLOW_ADDR)")
	token := fs.String("token", envOr(env, "LAMBDAFLOW_TOKEN", ""), "bearer token (env LAMBDAFLOW_TOKEN)")
	return func() *client {
		base := *addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		return &client{base: strings.TrimRight(base, "/"), token: *token, http: &http.Client{Timeout: 2 * time.Minute}}
	}
}

func envOr(env lookupEnv, key, def string) string {
	if v, ok := env(key); ok && v != "" {
		return v
	}
	return def
}

// apiError is a non-2xx answer of the server.
type apiError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// do sends a request and decodes a JSON answer into out (if non-nil).
func (c *client) do(ctx context.Context, method, path string, body io.Reader, header http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is lambdaflow running at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(data))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		ae := &apiError{Status: resp.StatusCode, Message: msg}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

func (c *client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, path, nil, nil, out)
}

// getOrPrint GETs path. With asJSON it prints the answer's JSON, indented,
// to w and reports false; otherwise it decodes the answer into ans and
// reports true. It reports false with every error.
func (c *client) getOrPrint(ctx context.Context, path string, q url.Values, asJSON bool, w io.Writer, ans any) (bool, error) {
	if !asJSON {
		err := c.getJSON(ctx, path, q, ans)
		return err == nil, err
	}
	var raw json.RawMessage
	if err := c.getJSON(ctx, path, q, &raw); err != nil {
		return false, err
	}
	return false, printJSON(w, raw)
}

// timeParams validates the --from and --to flags (RFC 3339) and sets those
// given as the from and to parameters of q.
func timeParams(q url.Values, from, to string) error {
	for _, p := range [...]struct{ name, v string }{{"from", from}, {"to", to}} {
		if p.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, p.v); err != nil {
			return fmt.Errorf("--%s %q: want an RFC 3339 time", p.name, p.v)
		}
		q.Set(p.name, p.v)
	}
	return nil
}

func (c *client) postJSON(ctx context.Context, path string, body []byte, header http.Header, out any) error {
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(body), header, out)
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

// retryable reports whether err is an overload or outage answer worth retrying,
// and how long to wait first.
func retryable(err error) (time.Duration, bool) {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable) {
		if ae.RetryAfter > 0 {
			return ae.RetryAfter, true
		}
		return time.Second, true
	}
	return 0, false
}
