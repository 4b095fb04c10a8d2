package api

// SQLRequest is the JSON body of POST /v1/sql (a text body is the query
// alone). The limits may only lower the pipeline's sql limits.
type SQLRequest struct {
	SQL      string `json:"sql"`
	MaxRows  int    `json:"max_rows,omitempty"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
	Timeout  string `json:"timeout,omitempty"` // a Go duration: "5s"
}

// SQLColumn is one column of a SQL answer: its name and DuckDB type.
type SQLColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// SQLResult answers POST /v1/sql in JSON: the columns, then each row's
// values in column order.
type SQLResult struct {
	Columns []SQLColumn `json:"columns"`
	Rows    [][]any     `json:"rows"`
}
