package api

// Error is the body of every error answer: {"error": message}. Ingest adds
// where a rejected body went wrong: the record (0-based), its line in an
// NDJSON body and the field.
type Error struct {
	Error  string `json:"error"`
	Record *int   `json:"record,omitempty"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
	// Column is, with Line, where in a POST /v1/sql query the error is.
	Column int `json:"column,omitempty"`
	// Limit names the limit a POST /v1/sql query exceeded (sql.timeout,
	// sql.max_rows, sql.max_bytes, sql.memory_limit, sql.lake_cache).
	Limit string `json:"limit,omitempty"`
}
