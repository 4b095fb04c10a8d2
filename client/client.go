// Package client is a Go client of Lambdaflow's HTTP API: every endpoint as
// a method answering the types of package api. The command line, `lambdaflow
// top` and the end-to-end tests talk to a running process through it,
// exactly as a user's program would.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// maxAnswer bounds the answers read, so a wrong address cannot exhaust
// memory.
const maxAnswer = 256 << 20

// Client talks to one Lambdaflow process. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the process at addr ("host:port" or a URL),
// sending token as a bearer token unless it is empty. httpClient nil means
// a client with a two-minute timeout.
func New(addr, token string, httpClient *http.Client) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: strings.TrimRight(addr, "/"), token: token, http: httpClient}
}

// Base is the process's URL, without a trailing slash.
func (c *Client) Base() string { return c.base }

// Error is an answer other than 2xx: its status, the message of its
// {"error": …} body (or the body itself) and its Retry-After.
type Error struct {
	Method, Path string
	Status       int
	Message      string
	RetryAfter   time.Duration
	// Body is the answer as it came.
	Body []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// StatusOf is the HTTP status of an answer err reports, 0 when err is not
// an answer.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404: an unknown name, or a part the
// process does not run (no batch layer, no sinks).
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// Retryable reports whether err is an overload or outage answer (429, 503)
// worth sending again, and how long to wait first.
func Retryable(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable) {
		if e.RetryAfter > 0 {
			return e.RetryAfter, true
		}
		return time.Second, true
	}
	return 0, false
}

// Do sends a request to path with query q and decodes a 2xx JSON answer
// into out (unless out is nil; a *json.RawMessage keeps it as it came).
// Any other status is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, body io.Reader, header http.Header, out any) error {
	_, data, err := c.send(ctx, method, path, q, body, header)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns the answer with its body; an answer
// other than 2xx is an *Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body io.Reader, header http.Header) (*http.Response, []byte, error) {
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("is lambdaflow running at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp, nil, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp, data, answerError(method, path, resp, data)
	}
	return resp, data, nil
}

func answerError(method, path string, resp *http.Response, data []byte) *Error {
	e := &Error{Method: method, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(data)), Body: data}
	var body api.Error
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message = body.Error
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// Get is Do for a GET.
func (c *Client) Get(ctx context.Context, path string, q url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, q, nil, nil, out)
}

// Post is Do for a POST of a body of contentType (none when empty).
func (c *Client) Post(ctx context.Context, path string, q url.Values, contentType string, body []byte, out any) error {
	var h http.Header
	if contentType != "" {
		h = http.Header{"Content-Type": {contentType}}
	}
	return c.Do(ctx, http.MethodPost, path, q, bytes.NewReader(body), h, out)
}

// TimeParams is the from and to parameters of the times that are not
// zero, as Query and Recompute send them.
func TimeParams(from, to time.Time) url.Values { return timeParams(nil, from, to) }

// timeParams sets the from and to parameters of the times that are not
// zero in q (a new one when nil).
func timeParams(q url.Values, from, to time.Time) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if !from.IsZero() {
		q.Set("from", from.Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.Format(time.RFC3339Nano))
	}
	return q
}
