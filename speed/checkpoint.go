package speed

import (
	"errors"
	"hash/crc32"
	"math"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
)

// A checkpoint is everything the owner of a partition of a view needs to
// go on after a restart, or another process after a move, as if nothing had
// happened: see checkpoint_part.go. It is one object, written atomically;
// docs/checkpoint-format.md specifies the encoding.

// checkpointMagic starts every checkpoint.
const checkpointMagic = "LFSC"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors reading a checkpoint.
var (
	// ErrCorruptCheckpoint is returned (wrapped) for a checkpoint that is not
	// well formed: bad magic, checksum, truncation, impossible values.
	ErrCorruptCheckpoint = errors.New("speed: corrupt checkpoint")
	// ErrCheckpointVersion is returned (wrapped) for a checkpoint of a format
	// version this build does not read.
	ErrCheckpointVersion = errors.New("speed: unsupported checkpoint version")
	// ErrDefinitionChanged is returned (wrapped) when the checkpoint was taken
	// under another definition of the view (where, group_by, window,
	// aggregates or the types of the fields they read): its state means
	// nothing for the new one.
	ErrDefinitionChanged = errors.New("speed: view definition changed since the checkpoint")
)

// restoreWindow puts one checkpointed window state back, marked changed so
// that the next Flush shows it.
func (e *engine) restoreWindow(tw plan.TimeWindow, key string, st *aggregate.State) {
	if e.session {
		k := e.keys[key]
		if k == nil {
			k = &sessionKey{key: key, queued: math.MaxInt64, shown: e.pace.never()}
			e.keys[key] = k
		}
		n := len(k.ss)
		k.ss.add(e.plan, tw, st, nil)
		e.nopen += len(k.ss) - n
		k.changed = math.MinInt64
		e.touch(k)
		return
	}
	w := e.window(tw)
	i, added := w.lookup(e.hash([]byte(key)), []byte(key))
	if added {
		e.nopen++
	}
	s := &w.slots[i]
	s.state, s.shown = *st, e.pace.never()
	if !s.dirty {
		s.dirty = true
		e.dirty = append(e.dirty, dirtyRef{w, i})
	}
}
