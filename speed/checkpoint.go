package speed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"

	"github.com/lambdaflow/lambdaflow/pipelines"
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

// definitionHash identifies what a view's state depends on. Lateness and
// retention are left out: changing them changes what happens next, not what
// the state means.
func definitionHash(v *pipelines.View, t *pipelines.Topic) uint64 {
	h := fnv.New64a()
	typeOf := func(name string) string {
		if i := t.Schema.Index(name); i >= 0 {
			return t.Schema[i].Type.String()
		}
		return "?"
	}
	fmt.Fprintf(h, "from=%q;where=%q;", v.From, v.Where)
	for _, g := range v.GroupBy {
		fmt.Fprintf(h, "group=%q:%s;", g, typeOf(g))
	}
	w := v.Window
	fmt.Fprintf(h, "window=%q,%d,%d,%d;", w.Type, w.Size, w.Slide, w.Gap)
	for _, a := range v.Aggregates {
		fmt.Fprintf(h, "agg=%q:%q:%q:%s:%x;", a.Name, a.Func, a.Field, typeOf(a.Field), math.Float64bits(a.Arg))
	}
	return h.Sum64()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// restoreWindow puts one checkpointed window state back, marked changed so
// that the next Flush shows it.
func (e *Engine) restoreWindow(tw plan.TimeWindow, key string, st *aggregate.State) {
	if e.session {
		k := e.keys[key]
		if k == nil {
			k = &sessionKey{key: key, queued: math.MaxInt64}
			e.keys[key] = k
		}
		n := len(k.ss)
		k.ss.add(e.plan, tw, st, nil)
		e.nopen += len(k.ss) - n
		e.touch(k)
		return
	}
	w := e.window(tw)
	if w.groups[key] == nil {
		e.nopen++
	}
	s := &slot{state: *st, dirty: true}
	w.groups[key] = s
	e.markDirty(w, s, []byte(key))
}

// ckReader decodes a checkpoint. The first failure sticks in err, and every
// later read returns zero.
type ckReader struct {
	b   []byte
	err error
}

func (r *ckReader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or malformed", ErrCorruptCheckpoint)
	}
	r.b = nil
}

func (r *ckReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *ckReader) uint64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *ckReader) uint32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *ckReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *ckReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least minSize bytes each, refusing
// counts the remaining bytes cannot hold (a corrupt count must not make the
// reader allocate without limit).
func (r *ckReader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minSize) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *ckReader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *ckReader) string() string { return string(r.bytes(int(r.uvarint()))) }
