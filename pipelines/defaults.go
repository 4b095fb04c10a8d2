package pipelines

import "time"

// Defaults that code outside the loader falls back on, for a pipeline built
// in code rather than loaded from a file. The loader takes defaults from the
// fields' default tags, which say the same; TestDefaultConstants checks it.
const (
	// DefaultPrefix is broker.prefix's default.
	DefaultPrefix = "LF"
	// defaultRetention is topics[].retention's default.
	defaultRetention = Duration(168 * time.Hour)
)
