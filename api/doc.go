// Package api holds the types of Lambdaflow's HTTP API: what every endpoint
// answers, field for field as it goes over the wire. The handlers of each
// layer build their answers from these types, and the Go client (package
// client), the command line, `lambdaflow top` and the tests decode them, so
// a JSON name is written once.
//
// It is a leaf: it imports nothing of this module, so any layer may use it
// for what it answers. It holds types and their small methods only, never
// handlers or logic of a layer.
package api
