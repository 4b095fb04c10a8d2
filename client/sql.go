package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lambdaflow/lambdaflow/api"
)

// SQL runs a read-only query (POST /v1/sql) and returns its JSON answer;
// numbers come as json.Number, exact. A refused query is an *Error whose
// message carries the line and column.
func (c *Client) SQL(ctx context.Context, req api.SQLRequest) (api.SQLResult, error) {
	data, err := c.SQLAs(ctx, req, "json")
	if err != nil {
		return api.SQLResult{}, err
	}
	var out api.SQLResult
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return api.SQLResult{}, fmt.Errorf("POST /v1/sql: decoding answer: %w", err)
	}
	return out, nil
}

// SQLAs runs a query and returns its answer as the server wrote it in
// format: json, ndjson or csv.
func (c *Client) SQLAs(ctx context.Context, req api.SQLRequest, format string) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	q := url.Values{"format": {format}}
	_, data, err := c.send(ctx, http.MethodPost, "/v1/sql", q, bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	return data, err
}
