package speed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
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
	checkpointVersion = 2
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
	parts     []plan.PartitionTime // per partition of the topic: newest event time
	next      []int64              // per partition of the topic: offset of the next event
	viewEnds  []int64              // per view-topic partition: offset after the last speed row
	retain    [][]finalRange       // per view-topic partition: where the final rows still retained are (maxEnd unknown)
}

// encodeCheckpoint writes the engine's and the emitter's state.
func encodeCheckpoint(b []byte, view string, def uint64, savedAt int64, e *engine, em *emitter) ([]byte, error) {
	b = append(b, checkpointMagic...)
	b = append(b, checkpointVersion, 0)
	b = binfmt.AppendString(b, view)
	b = binfmt.AppendUint64(b, def)
	b = binfmt.AppendVarint(b, savedAt)
	b = binfmt.AppendVarint(b, e.wm)
	b = binfmt.AppendUvarint(b, uint64(len(e.times)))
	for i, p := range e.times {
		b = binfmt.AppendVarint(b, e.next[i])
		if p.Seen {
			b = append(b, 1)
			b = binfmt.AppendVarint(b, p.Newest)
		} else {
			b = append(b, 0)
		}
	}
	b = binfmt.AppendUvarint(b, uint64(em.parts))
	for p := range em.parts {
		b = binfmt.AppendVarint(b, em.ends[p])
		b = binfmt.AppendUvarint(b, uint64(len(em.ranges[p])))
		for _, r := range em.ranges[p] {
			b = binfmt.AppendVarint(b, r.from)
			b = binfmt.AppendUvarint(b, uint64(r.to-r.from))
		}
	}
	b = binfmt.AppendUvarint(b, uint64(e.OpenWindows()))
	var err error
	window := func(tw plan.TimeWindow, key string, st *aggregate.State) {
		if err != nil {
			return
		}
		b = binfmt.AppendVarint(b, tw.Start)
		b = binfmt.AppendVarint(b, tw.End)
		b = binfmt.AppendString(b, key)
		// The state's length precedes it: reserve four bytes and fill
		// them in afterwards rather than encoding the state twice.
		var at int
		b, at = binfmt.ReserveUint32(b)
		b, err = st.AppendBinary(b)
		binfmt.PutUint32(b, at, uint32(len(b)-at-4))
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
	return binfmt.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeCheckpoint checks a checkpoint's framing and reads its header; the
// returned reader is positioned at the window count.
func decodeCheckpoint(data []byte) (checkpointHeader, *binfmt.Reader, error) {
	var h checkpointHeader
	if len(data) < len(checkpointMagic)+2+4 || string(data[:4]) != checkpointMagic {
		return h, nil, fmt.Errorf("%w: bad magic", ErrCorruptCheckpoint)
	}
	version := data[4]
	if version != 1 && version != checkpointVersion {
		return h, nil, fmt.Errorf("%w %d (this build reads 1 and %d)", ErrCheckpointVersion, version, checkpointVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return h, nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptCheckpoint)
	}
	if data[5] != 0 {
		return h, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorruptCheckpoint, data[5])
	}
	// Offsets in errors count from the start of the object.
	r := binfmt.NewReader(body, ErrCorruptCheckpoint)
	r.Skip(6)
	h.view = r.LenString()
	h.def = r.Uint64()
	h.savedAt = r.Varint()
	h.watermark = r.Varint()
	n := r.Count(3)
	h.parts = make([]plan.PartitionTime, 0, n)
	h.next = make([]int64, 0, n)
	for range n {
		next := r.Varint()
		var p plan.PartitionTime
		switch seen := r.Byte(); seen {
		case 0:
		case 1:
			p.Seen, p.Newest = true, r.Varint()
		default:
			r.Failf("partition %d: seen flag %d", len(h.parts), seen)
		}
		if next < 0 {
			r.Failf("partition %d: next offset %d", len(h.parts), next)
		}
		h.parts = append(h.parts, p)
		h.next = append(h.next, next)
	}
	n = r.Count(2)
	for range n {
		end := r.Varint()
		h.viewEnds = append(h.viewEnds, end)
		var ranges []finalRange
		if version == 1 {
			// Version 1 appended final rows only: they lie from retain
			// to the end.
			if from := r.Varint(); from < end {
				ranges = append(ranges, finalRange{from: from, to: end})
			}
		} else {
			nr := r.Count(2)
			for range nr {
				from := r.Varint()
				to := from + int64(r.Uvarint())
				if from < 0 || to <= from || to > end || (len(ranges) > 0 && from < ranges[len(ranges)-1].to) {
					r.Failf("view partition %d: final rows in [%d, %d)", len(h.viewEnds)-1, from, to)
					break
				}
				ranges = append(ranges, finalRange{from: from, to: to})
			}
		}
		h.retain = append(h.retain, ranges)
	}
	return h, &r, r.Err()
}

// restoreWindows reads the checkpoint's windows into an empty engine.
func restoreWindows(e *engine, r *binfmt.Reader) error {
	n := r.Count(4)
	for range n {
		tw := plan.TimeWindow{Start: r.Varint(), End: r.Varint()}
		key := r.LenBytes()
		raw := r.Bytes(int(r.Uint32()))
		if r.Failed() {
			break
		}
		if tw.End <= tw.Start || (e.wm != plan.NoWatermark && tw.End <= e.wm) {
			return fmt.Errorf("%w: window [%d, %d) open behind the watermark %d", ErrCorruptCheckpoint, tw.Start, tw.End, e.wm)
		}
		if _, err := e.plan.DecodeKey(key); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		st, err := e.plan.UnmarshalState(raw)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		e.restoreWindow(tw, string(key), st)
	}
	if r.Err() == nil && r.Remaining() != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorruptCheckpoint, r.Remaining())
	}
	return r.Err()
}

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
