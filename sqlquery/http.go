package sqlquery

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// maxQueryBytes bounds a request body: a query, not data.
const maxQueryBytes = 1 << 20

// Handler serves POST /v1/sql.
type Handler struct {
	engine  *Engine
	auth    *httpapi.Auth
	metrics *metrics
}

// NewHandler returns the SQL API over engine; auth gives each request's
// read scope, checked per table. reg gets the queries' metrics (nil: not
// exported).
func NewHandler(engine *Engine, auth *httpapi.Auth, reg prometheus.Registerer) (*Handler, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Handler{engine: engine, auth: auth, metrics: m}, nil
}

// Routes returns POST /v1/sql. It is a read, checked here rather than at
// the mux: a token may read some topics and not others, and a query is
// refused 403 naming the first table it may not read.
func (h *Handler) Routes() []httpapi.Route {
	return []httpapi.Route{{Pattern: "POST /v1/sql", Access: httpapi.Public, Handler: http.HandlerFunc(h.serve)}}
}

// Formats of an answer.
const (
	FormatJSON   = "json"
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

var formatTypes = map[string]string{
	FormatJSON:   "application/json",
	FormatNDJSON: "application/x-ndjson",
	FormatCSV:    "text/csv; charset=utf-8",
}

// format picks the answer's format: ?format=, else the Accept header, else
// JSON.
func format(r *http.Request) (string, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		if _, ok := formatTypes[f]; !ok {
			return "", fmt.Errorf("parameter \"format\": %q is not json, ndjson or csv", f)
		}
		return f, nil
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/x-ndjson", "application/ndjson", "application/jsonl":
			return FormatNDJSON, nil
		case "text/csv":
			return FormatCSV, nil
		case "application/json":
			return FormatJSON, nil
		}
	}
	return FormatJSON, nil
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	start := h.engine.now()
	result, limit, rows := resultError, "", 0
	defer func() { h.metrics.observe(result, limit, rows, h.engine.now().Sub(start)) }()
	mayRead, d := h.auth.ReadScope(r)
	if d != nil {
		result = resultForbidden
		httpapi.Deny(w, d)
		return
	}
	f, err := format(r)
	if err != nil {
		result = resultInvalid
		httpapi.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	req, err := readRequest(r)
	if err != nil {
		result = resultInvalid
		httpapi.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.MayRead = mayRead
	res, err := h.engine.Query(r.Context(), req)
	if err != nil {
		result, limit = outcomeOf(err)
		if r.Context().Err() != nil {
			// Whatever the engine made of it, the caller left first.
			result, limit = resultCanceled, ""
		}
		writeQueryError(w, err)
		return
	}
	var buf bytes.Buffer
	if err := Encode(&buf, f, res); err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	result, rows = resultOK, len(res.Rows)
	w.Header().Set("Content-Type", formatTypes[f])
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes()) // an error means the client went away
}

// readRequest reads the query and its limits: a JSON body (api.SQLRequest)
// or a text body holding the query, limits also as parameters.
func readRequest(r *http.Request) (Request, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxQueryBytes+1))
	if err != nil {
		return Request{}, fmt.Errorf("reading the body: %w", err)
	}
	if len(body) > maxQueryBytes {
		return Request{}, fmt.Errorf("the query is larger than %d bytes", maxQueryBytes)
	}
	var in api.SQLRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return Request{}, fmt.Errorf("body: want {\"sql\": \"SELECT …\"}: %w", err)
		}
	} else {
		in.SQL = string(body)
	}
	q := r.URL.Query()
	if v := q.Get("max_rows"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Request{}, fmt.Errorf("parameter \"max_rows\": %q is not a positive number", v)
		}
		in.MaxRows = n
	}
	if v := q.Get("timeout"); v != "" {
		in.Timeout = v
	}
	if in.MaxRows < 0 || in.MaxBytes < 0 {
		return Request{}, errors.New("max_rows and max_bytes must be positive")
	}
	req := Request{SQL: in.SQL, Limits: Limits{MaxRows: in.MaxRows, MaxBytes: in.MaxBytes}}
	if in.Timeout != "" {
		d, err := time.ParseDuration(in.Timeout)
		if err != nil || d <= 0 {
			return Request{}, fmt.Errorf("timeout: %q is not a positive duration such as 5s", in.Timeout)
		}
		req.Limits.Timeout = d
	}
	return req, nil
}

// Status is the HTTP status of an Error's kind.
func Status(k Kind) int {
	switch k {
	case Invalid, NotReadOnly, UnknownTable:
		return http.StatusBadRequest
	case Forbidden:
		return http.StatusForbidden
	case LimitExceeded:
		return http.StatusUnprocessableEntity
	case Unavailable:
		return http.StatusServiceUnavailable
	case NotCompiled:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

func writeQueryError(w http.ResponseWriter, err error) {
	var qe *Error
	if !errors.As(err, &qe) {
		httpapi.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpapi.WriteErrorBody(w, Status(qe.Kind), api.Error{Error: qe.Error(), Line: qe.Line, Column: qe.Column, Limit: qe.Limit})
}

// Encode writes res in format f: JSON (api.SQLResult), NDJSON (an object
// per row, keys in column order) or CSV (a header line, then the rows).
func Encode(w io.Writer, f string, res *Result) error {
	switch f {
	case FormatJSON:
		out := api.SQLResult{Columns: make([]api.SQLColumn, len(res.Columns)), Rows: res.Rows}
		for i, c := range res.Columns {
			out.Columns[i] = api.SQLColumn{Name: c.Name, Type: c.Type}
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatNDJSON:
		var buf []byte
		for _, row := range res.Rows {
			buf = append(buf[:0], '{')
			for i, c := range res.Columns {
				if i > 0 {
					buf = append(buf, ',')
				}
				k, _ := json.Marshal(c.Name)
				v, err := json.Marshal(row[i])
				if err != nil {
					return err
				}
				buf = append(append(append(buf, k...), ':'), v...)
			}
			buf = append(buf, '}', '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		head := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			head[i] = c.Name
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		rec := make([]string, len(res.Columns))
		for _, row := range res.Rows {
			for i, v := range row {
				rec[i] = Text(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("unknown format %q", f)
}

// Text is a value of an answer as text: empty for null, lists and objects
// as JSON.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
