//go:build race

package pipelines

// raceEnabled is true when tests run under the race detector, whose
// instrumentation allocates: allocation counts mean nothing then.
const raceEnabled = true
