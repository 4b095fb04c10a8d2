package serving

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Handler serves GET /v1/views and GET /v1/views/{view}.
type Handler struct {
	store   *Store
	schemas map[string]event.Schema // view name → row schema
	now     func() time.Time
	metrics *metrics
}

// NewHandler returns the query API over store. The pipeline gives each
// view's row schema, used to parse filters and to encode values.
func NewHandler(p *pipelines.Pipeline, store *Store, m *Metrics) *Handler {
	h := &Handler{store: store, schemas: map[string]event.Schema{}, now: time.Now}
	if m != nil {
		h.metrics = m.m
	}
	for i := range p.Views {
		v := &p.Views[i]
		if t := p.TopicByName(v.From); t != nil {
			h.schemas[v.Name] = pipelines.ViewSchema(v, t)
		}
	}
	return h
}

// Routes returns the query API: GET /v1/views and GET /v1/views/{view},
// both reads.
func (h *Handler) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "GET /v1/views", Access: httpapi.Read, Handler: http.HandlerFunc(h.list)},
		{Pattern: "GET /v1/views/{view}", Access: httpapi.Read, Handler: http.HandlerFunc(h.query)},
	}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	out := api.Views{Views: []api.ViewInfo{}}
	for _, name := range h.store.Views() {
		v := h.store.View(name)
		vi := api.ViewInfo{Name: v.Name, From: v.From, GroupBy: append([]string{}, v.GroupBy...), Window: v.Window.Type, Drift: h.store.Drift(name)}
		for _, a := range v.Aggregates {
			vi.Aggregates = append(vi.Aggregates, a.Name)
		}
		if hz, ok := h.store.Horizon(name); ok {
			s := formatTime(hz)
			vi.Horizon = &s
		}
		out.Views = append(out.Views, vi)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// ParseFilter turns query parameters into a Filter for view: group-by field
// names filter by value, from and to bound window starts (RFC 3339).
func (h *Handler) ParseFilter(view string, q map[string][]string) (Filter, error) {
	v := h.store.View(view)
	schema := h.schemas[view]
	f := Filter{Group: map[int]event.Value{}}
	for k, vals := range q {
		if len(vals) == 0 {
			continue
		}
		val := vals[len(vals)-1]
		switch k {
		case "from", "to":
			t, err := httpapi.ParseTime(val)
			if err != nil {
				return Filter{}, fmt.Errorf("parameter %q: %w", k, err)
			}
			if k == "from" {
				f.From = t.UnixMicro()
			} else {
				f.To = t.UnixMicro()
			}
			continue
		}
		gi := -1
		for i, g := range v.GroupBy {
			if g == k {
				gi = i
			}
		}
		if gi < 0 {
			return Filter{}, fmt.Errorf("parameter %q: not a group-by field of view %q (group_by: %s)", k, view, strings.Join(v.GroupBy, ", "))
		}
		fi := schema.Index(k)
		pv, err := event.ParseValue(schema[fi].Type, val)
		if err != nil {
			return Filter{}, fmt.Errorf("parameter %q: %w", k, err)
		}
		f.Group[gi] = pv
	}
	if f.From != 0 && f.To != 0 && f.To <= f.From {
		return Filter{}, fmt.Errorf("parameter \"to\" must be after \"from\"")
	}
	return f, nil
}

func (h *Handler) query(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("view")
	if h.store.View(name) == nil {
		httpapi.WriteUnknown(w, "view", name, h.store.Views())
		return
	}
	f, err := h.ParseFilter(name, r.URL.Query())
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, hz, hasHz, _ := h.store.Query(name, f)
	var buf []byte
	buf = append(buf, `{"view":`...)
	buf = strconv.AppendQuote(buf, name)
	buf = append(buf, `,"horizon":`...)
	if hasHz {
		buf = strconv.AppendQuote(buf, formatTime(hz))
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"rows":[`...)
	schema := h.schemas[name]
	for i, row := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendRowJSON(buf, schema, row)
	}
	buf = append(buf, "]}\n"...)
	httpapi.WriteRaw(w, http.StatusOK, buf)
	if h.metrics != nil {
		h.metrics.observe(name, time.Since(start))
	}
}

// AppendRowJSON encodes a row as a JSON object: window_start, window_end, the
// group-by fields, the aggregates, layer and final.
func AppendRowJSON(buf []byte, schema event.Schema, row viewrow.Row) []byte {
	buf = append(buf, `{"window_start":`...)
	buf = strconv.AppendQuote(buf, formatTime(row.Start))
	buf = append(buf, `,"window_end":`...)
	buf = strconv.AppendQuote(buf, formatTime(row.End))
	col := 2
	for _, v := range row.Group {
		buf = appendField(buf, schema, col, v)
		col++
	}
	for _, v := range row.Aggs {
		buf = appendField(buf, schema, col, v)
		col++
	}
	buf = append(buf, `,"layer":"`...)
	buf = append(buf, row.Layer...)
	buf = append(buf, `","final":`...)
	buf = strconv.AppendBool(buf, row.Final)
	return append(buf, '}')
}

func appendField(buf []byte, schema event.Schema, col int, v event.Value) []byte {
	if col >= len(schema) {
		return buf
	}
	f := schema[col]
	buf = append(buf, ',')
	buf = strconv.AppendQuote(buf, f.Name)
	buf = append(buf, ':')
	return event.AppendValueJSON(buf, f.Type, v)
}

func formatTime(us int64) string { return event.FormatTime(us) }
