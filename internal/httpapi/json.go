package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// WriteJSON answers status with v as JSON and a newline.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (a channel, a cycle) gets here.
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer: `+jsonSafe(err.Error())+`"}`)
	}
	WriteRaw(w, status, append(b, '\n'))
}

// Header values every JSON answer shares; never modified, so one slice
// serves every answer without an allocation each.
var (
	jsonType = []string{"application/json"}
	nosniff  = []string{"nosniff"}
)

// WriteRaw answers status with body, JSON encoded by the caller (handlers
// on hot paths append their answers by hand).
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	w.Write(body) // an error means the client went away: nothing to do
}

// WriteError answers status with {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, api.Error{Error: msg})
}

// WriteErrorBody answers status with a full error body.
func WriteErrorBody(w http.ResponseWriter, status int, body api.Error) {
	WriteJSON(w, status, body)
}

// jsonSafe makes s fit inside a JSON string literal without escaping.
func jsonSafe(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// WriteUnknown answers 404 for a name the pipeline does not have: what is
// the kind of thing ("topic", "view", "sink"), known the names it has. The
// message suggests the likely typo, or else lists the names:
//
//	unknown topic "metrcs" (did you mean "metrics"?)
//	unknown view "x" (views: cpu_by_region, errors)
func WriteUnknown(w http.ResponseWriter, what, name string, known []string) {
	WriteError(w, http.StatusNotFound, UnknownMessage(what, name, known))
}

// UnknownMessage is the message of WriteUnknown.
func UnknownMessage(what, name string, known []string) string {
	msg := fmt.Sprintf("unknown %s %q", what, name)
	if hint := pipelines.DidYouMean(name, known); hint != "" {
		return msg + hint
	}
	if len(known) == 0 {
		return msg + " (the pipeline has no " + what + "s)"
	}
	return msg + " (" + what + "s: " + strings.Join(known, ", ") + ")"
}
