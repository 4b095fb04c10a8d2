package api

// Health answers GET /healthz ({"status": "ok"}) and GET /readyz: "ready",
// or with a 503 "unavailable", each part that is down with why (Down) and
// their names sorted (Parts).
type Health struct {
	Status string            `json:"status"`
	Down   map[string]string `json:"down,omitempty"`
	Parts  []string          `json:"parts,omitempty"`
}
