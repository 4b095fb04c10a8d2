// Package archtest holds the test that enforces the import rules of
// docs/architecture.md: every package of the module has a layer, a package
// imports only packages of lower layers, the pipeline-file packages import
// no runtime package, only broker imports NATS, and nothing imports cmd.
// It reads the real import graph with `go list`; it has no code of its own.
package archtest
