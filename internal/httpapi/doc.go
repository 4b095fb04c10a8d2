// Package httpapi is what every HTTP endpoint of a Lambdaflow process
// shares: routes with their access (public, read, write to a topic, admin)
// and the one place that decides it from the tokens, JSON answers and the
// error body, query parameters, readiness checks, the mux that mounts
// every layer's routes on one listener, and the server that listens with
// deadlines and a cap on connections against slow and hostile clients.
//
// Each layer declares its own routes (a Routes method returning []Route)
// and readiness (Checks); the command wires them together without knowing
// either. This package knows no layer: it imports only the pipeline file
// (for the tokens) and the API types.
package httpapi
