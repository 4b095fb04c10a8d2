package api

import "encoding/json"

// Views answers GET /v1/views.
type Views struct {
	Views []ViewInfo `json:"views"`
}

// ViewInfo describes one view.
type ViewInfo struct {
	Name       string   `json:"name"`
	From       string   `json:"from"`
	GroupBy    []string `json:"group_by"`
	Window     string   `json:"window"`
	Aggregates []string `json:"aggregates"`
	// Horizon is the batch horizon (RFC 3339), null before the first batch
	// run that found data.
	Horizon *string `json:"horizon"`
	// Drift counts closed windows where the layers disagreed.
	Drift uint64 `json:"drift_windows"`
}

// ViewRows answers GET /v1/views/{view}. Each row is a JSON object with
// window_start, window_end, the group-by fields, the aggregates, layer
// ("batch" or "speed") and final, in that order; its keys depend on the
// view, so rows stay raw: decode them into a struct of the view's columns.
type ViewRows struct {
	View    string            `json:"view"`
	Horizon *string           `json:"horizon"`
	Rows    []json.RawMessage `json:"rows"`
}
