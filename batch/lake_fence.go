package batch

import (
	"errors"
	"fmt"
	"slices"
)

// partLost is errLost for one partition: a commit of the lake found the
// partition recorded in the manifest under a higher epoch, or this
// process's lease of it gone. A flush refused that way drops that
// partition only; the others are written by the next flush.
type partLost struct {
	part int
	msg  string
}

func (e *partLost) Error() string { return e.msg }
func (e *partLost) Unwrap() error { return errLost }

// lostPartitions returns the partitions the partLost errors in err's tree
// name, sorted and distinct.
func lostPartitions(err error) []int {
	var out []int
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *partLost:
			out = append(out, e.part)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	slices.Sort(out)
	return slices.Compact(out)
}

// fenced refuses a commit for partition state ps under fence f.
func fenced(ps partitionState, f Fence, topic string) error {
	if f == nil {
		return nil
	}
	if ps.Epoch > f.Epoch() || !f.Valid() {
		return &partLost{part: ps.Partition, msg: fmt.Sprintf("%v: %s/%d: the manifest was committed by epoch %d, this writer holds %d",
			errLost, topic, ps.Partition, ps.Epoch, f.Epoch())}
	}
	return nil
}

// errAttached refuses a second reader of a partition in one writer: the
// previous one has not let go of it yet.
var errAttached = errors.New("lake: the partition is still being let go by its previous reader in this process")
