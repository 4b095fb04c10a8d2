package pipelines

// Aggregate is one output column of a view: Name: Func(Field[, Arg]).
type Aggregate struct {
	Name  string
	Func  string  // count, sum, min, max, avg, count_distinct, quantile, first, last
	Field string  // empty for count()
	Arg   float64 // quantile's q
	Pos   Pos
}

// Aggregates is the ordered list of a view's aggregates, written in the
// pipeline file as a mapping from output name to call.
type Aggregates []Aggregate
