//go:build race

package plan

// raceEnabled is true when tests run under the race detector, whose
// instrumentation allocates: allocation counts mean nothing then.
const raceEnabled = true
