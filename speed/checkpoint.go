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

// A checkpoint is everything a view's speed computation needs to go on
// after a restart as if it had never stopped: per partition of the topic
// the next offset and the newest event time, the view's watermark, every
// open window with its group key and aggregate state, and where the view's
// final rows sit in its log topic. It is one object, written atomically;
// docs/checkpoint-format.md specifies the encoding.

// Checkpoint format constants.
const (
	checkpointMagic   = "LFSC"
	checkpointVersion = 1
)

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

// checkpointHeader is the part of a checkpoint besides the windows.
type checkpointHeader struct {
	view      string
	def       uint64
	savedAt   int64 // UTC µs on the speed layer's clock
	watermark int64
	parts     []partState
	viewEnds  []int64 // per view-topic partition: offset after the last speed row
	retain    []int64 // per view-topic partition: first offset of rows still retained
}

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

// encodeCheckpoint writes the engine's and the emitter's state.
func encodeCheckpoint(b []byte, view string, def uint64, savedAt int64, e *Engine, em *emitter) ([]byte, error) {
	b = append(b, checkpointMagic...)
	b = append(b, checkpointVersion, 0)
	b = appendString(b, view)
	b = binary.LittleEndian.AppendUint64(b, def)
	b = binary.AppendVarint(b, savedAt)
	b = binary.AppendVarint(b, e.wm)
	b = binary.AppendUvarint(b, uint64(len(e.parts)))
	for _, p := range e.parts {
		b = binary.AppendVarint(b, p.next)
		if p.seen {
			b = append(b, 1)
			b = binary.AppendVarint(b, p.maxTime)
		} else {
			b = append(b, 0)
		}
	}
	retain := em.retainFrom()
	b = binary.AppendUvarint(b, uint64(em.parts))
	for p := range em.parts {
		b = binary.AppendVarint(b, em.ends[p])
		b = binary.AppendVarint(b, retain[p])
	}
	b = binary.AppendUvarint(b, uint64(e.OpenWindows()))
	var err error
	window := func(tw plan.TimeWindow, key string, st *aggregate.State) {
		if err != nil {
			return
		}
		b = binary.AppendVarint(b, tw.Start)
		b = binary.AppendVarint(b, tw.End)
		b = appendString(b, key)
		// The state's length precedes it: reserve four bytes and fill
		// them in afterwards rather than encoding the state twice.
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b, err = st.AppendBinary(b)
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	for _, w := range e.windows {
		for key, s := range w.groups {
			window(w.TimeWindow, key, &s.state)
		}
	}
	for _, k := range e.keys {
		for _, s := range k.ss {
			window(s.TimeWindow, k.key, s.State)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("speed: view %q: checkpoint: %w", view, err)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeCheckpoint checks a checkpoint's framing and reads its header; the
// returned reader is positioned at the window count.
func decodeCheckpoint(data []byte) (checkpointHeader, *ckReader, error) {
	var h checkpointHeader
	if len(data) < len(checkpointMagic)+2+4 || string(data[:4]) != checkpointMagic {
		return h, nil, fmt.Errorf("%w: bad magic", ErrCorruptCheckpoint)
	}
	if v := data[4]; v != checkpointVersion {
		return h, nil, fmt.Errorf("%w %d (this build reads %d)", ErrCheckpointVersion, v, checkpointVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return h, nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptCheckpoint)
	}
	if data[5] != 0 {
		return h, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorruptCheckpoint, data[5])
	}
	r := &ckReader{b: body[6:]}
	h.view = r.string()
	h.def = r.uint64()
	h.savedAt = r.varint()
	h.watermark = r.varint()
	n := r.count(3)
	h.parts = make([]partState, 0, n)
	for range n {
		p := partState{next: r.varint()}
		switch r.byte() {
		case 0:
		case 1:
			p.seen, p.maxTime = true, r.varint()
		default:
			r.fail()
		}
		if p.next < 0 {
			r.fail()
		}
		h.parts = append(h.parts, p)
	}
	n = r.count(2)
	for range n {
		h.viewEnds = append(h.viewEnds, r.varint())
		h.retain = append(h.retain, r.varint())
	}
	return h, r, r.err
}

// restoreWindows reads the checkpoint's windows into an empty engine.
func restoreWindows(e *Engine, r *ckReader) error {
	n := r.count(4)
	for range n {
		tw := plan.TimeWindow{Start: r.varint(), End: r.varint()}
		key := r.string()
		raw := r.bytes(int(r.uint32()))
		if r.err != nil {
			break
		}
		if tw.End <= tw.Start || (e.wm != noWatermark && tw.End <= e.wm) {
			return fmt.Errorf("%w: window [%d, %d) open behind the watermark %d", ErrCorruptCheckpoint, tw.Start, tw.End, e.wm)
		}
		if _, err := e.plan.DecodeKey([]byte(key)); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		st, err := e.plan.UnmarshalState(raw)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		e.restoreWindow(tw, key, st)
	}
	if r.err == nil && len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorruptCheckpoint, len(r.b))
	}
	return r.err
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
