package serving

import "math"

func floatBits(f float64) uint64 { return math.Float64bits(f) }
