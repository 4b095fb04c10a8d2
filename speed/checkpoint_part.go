package speed

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
)

// A view is checkpointed per partition (docs/checkpoint-format.md, version
// 3): one object holds what the owner of partition p of the view computes,
// stage 1 over source partition p and stage 2 over partition p of the view,
// with the positions in both topics and in the view's own topic.

// checkpointPartVersion is the format of a partition's checkpoint.
const checkpointPartVersion = 3

// partCheckpoint is a decoded partition checkpoint, without the windows
// and units (restorePart puts those into an engine and a merger).
type partCheckpoint struct {
	view    string
	def     uint64
	savedAt int64
	part    int
	epoch   uint64

	next       int64 // source partition: offset of the next event
	seen       bool
	newest     int64
	watermark1 int64 // stage 1's own watermark

	partialsNext int64 // partials partition: offset of the next record
	watermark2   int64 // the view's watermark, as stage 2 knew it
	sources      []sourceState

	viewEnd int64        // the view topic's partition p: offset after the last speed row
	retain  []finalRange // its ranges of final rows still retained (maxEnd unknown)
}

// encodePart writes a partition checkpoint of the engine e1 (stage 1), the
// merger m (stage 2) and the emitter em's positions in partition part of
// the view's topic.
func encodePart(b []byte, view string, def uint64, savedAt int64, part int, epoch uint64,
	e1 *engine, m *merger, partialsNext int64, em *emitter) ([]byte, error) {
	b = append(b, checkpointMagic...)
	b = append(b, checkpointPartVersion, 0)
	b = binfmt.AppendString(b, view)
	b = binfmt.AppendUint64(b, def)
	b = binfmt.AppendVarint(b, savedAt)
	b = binfmt.AppendUvarint(b, uint64(part))
	b = binfmt.AppendUvarint(b, epoch)

	b = binfmt.AppendVarint(b, e1.Next(0))
	if t, ok := e1.MaxTime(0); ok {
		b = append(b, 1)
		b = binfmt.AppendVarint(b, t)
	} else {
		b = append(b, 0)
	}
	b = binfmt.AppendVarint(b, e1.wm)
	b, err := appendWindows(b, e1)
	if err != nil {
		return nil, fmt.Errorf("speed: view %q partition %d: checkpoint: %w", view, part, err)
	}

	b = binfmt.AppendVarint(b, partialsNext)
	b = binfmt.AppendVarint(b, m.wm)
	b = binfmt.AppendUvarint(b, uint64(len(m.sources)))
	for _, s := range m.sources {
		b = binfmt.AppendUvarint(b, s.epoch)
		b = binfmt.AppendVarint(b, s.asOf)
		var flags byte
		if s.seen {
			flags |= 1
		}
		if s.idle {
			flags |= 2
		}
		if s.reports {
			flags |= 4
		}
		b = append(b, flags)
		if s.seen {
			b = binfmt.AppendVarint(b, s.newest)
		}
	}
	n := 0
	for _, u := range m.units {
		n += len(u.states)
	}
	b = binfmt.AppendUvarint(b, uint64(n))
	keys := make([]unitKey, 0, len(m.units))
	for uk := range m.units {
		keys = append(keys, uk)
	}
	// In a fixed order, so that equal states give equal checkpoints.
	slices.SortFunc(keys, func(a, b unitKey) int {
		return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.key, b.key))
	})
	for _, uk := range keys {
		u := m.units[uk]
		srcs := make([]int, 0, len(u.states))
		for s := range u.states {
			srcs = append(srcs, s)
		}
		slices.Sort(srcs)
		for _, s := range srcs {
			b = binfmt.AppendVarint(b, uk.start)
			b = binfmt.AppendVarint(b, u.end)
			b = binfmt.AppendString(b, uk.key)
			b = binfmt.AppendUvarint(b, uint64(s))
			var at int
			b, at = binfmt.ReserveUint32(b)
			if b, err = u.states[s].AppendBinary(b); err != nil {
				return nil, fmt.Errorf("speed: view %q partition %d: checkpoint: %w", view, part, err)
			}
			binfmt.PutUint32(b, at, uint32(len(b)-at-4))
		}
	}
	b = binfmt.AppendVarint(b, em.ends[part])
	b = binfmt.AppendUvarint(b, uint64(len(em.ranges[part])))
	for _, rg := range em.ranges[part] {
		b = binfmt.AppendVarint(b, rg.from)
		b = binfmt.AppendUvarint(b, uint64(rg.to-rg.from))
	}
	return binfmt.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// appendWindows writes an engine's open windows: the count, then per
// window its bounds, key and state.
func appendWindows(b []byte, e *engine) ([]byte, error) {
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
		for i := range w.slots {
			window(w.TimeWindow, w.key(i), &w.slots[i].state)
		}
	}
	for _, k := range e.keys {
		for _, s := range k.ss {
			window(s.TimeWindow, k.key, s.State)
		}
	}
	return b, err
}

// decodePart checks a partition checkpoint's framing and reads it into
// e1 and m (fresh, for the view's plan) and the returned header.
func decodePart(data []byte, e1 *engine, m *merger) (partCheckpoint, error) {
	var h partCheckpoint
	if len(data) < len(checkpointMagic)+2+4 || string(data[:4]) != checkpointMagic {
		return h, fmt.Errorf("%w: bad magic", ErrCorruptCheckpoint)
	}
	if v := data[4]; v != checkpointPartVersion {
		return h, fmt.Errorf("%w %d (this build reads %d)", ErrCheckpointVersion, v, checkpointPartVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return h, fmt.Errorf("%w: checksum mismatch", ErrCorruptCheckpoint)
	}
	if data[5] != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x", ErrCorruptCheckpoint, data[5])
	}
	// Offsets in errors count from the start of the object.
	rd := binfmt.NewReader(body, ErrCorruptCheckpoint)
	r := &rd
	r.Skip(6)
	h.view = r.LenString()
	h.def = r.Uint64()
	h.savedAt = r.Varint()
	h.part = int(r.Uvarint())
	h.epoch = r.Uvarint()

	h.next = r.Varint()
	switch seen := r.Byte(); seen {
	case 0:
	case 1:
		h.seen, h.newest = true, r.Varint()
	default:
		r.Failf("seen flag %d", seen)
	}
	h.watermark1 = r.Varint()
	if h.next < 0 {
		r.Failf("next offset %d", h.next)
	}
	if err := r.Err(); err != nil {
		return h, err
	}
	e1.times[0] = plan.PartitionTime{Newest: h.newest, Seen: h.seen}
	e1.next[0] = h.next
	e1.wm = h.watermark1
	if err := readWindows(e1, r); err != nil {
		return h, err
	}

	h.partialsNext = r.Varint()
	h.watermark2 = r.Varint()
	n := r.Count(3)
	for range n {
		s := sourceState{epoch: r.Uvarint(), asOf: r.Varint()}
		flags := r.Byte()
		s.seen, s.idle, s.reports = flags&1 != 0, flags&2 != 0, flags&4 != 0
		if flags&^7 != 0 {
			r.Failf("source %d: flags %#x", len(h.sources), flags)
		}
		if s.seen {
			s.newest = r.Varint()
		}
		h.sources = append(h.sources, s)
	}
	if err := r.Err(); err != nil {
		return h, err
	}
	if len(h.sources) > len(m.sources) {
		return h, fmt.Errorf("%w: %d source partitions, the topic has %d", ErrCorruptCheckpoint, len(h.sources), len(m.sources))
	}
	copy(m.sources, h.sources)
	m.wm = h.watermark2
	n = r.Count(4)
	for range n {
		start, end := r.Varint(), r.Varint()
		key := r.LenString()
		src := int(r.Uvarint())
		raw := r.Bytes(int(r.Uint32()))
		if err := r.Err(); err != nil {
			return h, err
		}
		if end <= start || src >= len(m.sources) {
			return h, fmt.Errorf("%w: unit [%d, %d) of source %d", ErrCorruptCheckpoint, start, end, src)
		}
		if _, err := m.plan.DecodeKey([]byte(key)); err != nil {
			return h, fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		st, err := m.plan.UnmarshalState(raw)
		if err != nil {
			return h, fmt.Errorf("%w: %w", ErrCorruptCheckpoint, err)
		}
		uk := unitKey{key, start}
		u := m.units[uk]
		if u == nil {
			u = &unit{end: end, states: map[int]*aggregate.State{}, shown: m.pace.never()}
			m.units[uk] = u
			if m.session {
				m.keyUnits[key] = append(m.keyUnits[key], uk)
			}
		}
		u.states[src] = st
		m.touch(uk, u)
	}
	h.viewEnd = r.Varint()
	n = r.Count(2)
	for range n {
		from := r.Varint()
		rg := finalRange{from: from, to: from + int64(r.Uvarint()), maxEnd: math.MaxInt64}
		if from < 0 || rg.to < from || rg.to > h.viewEnd {
			r.Failf("final rows [%d, %d) outside the view topic's %d", from, rg.to, h.viewEnd)
		}
		h.retain = append(h.retain, rg)
	}
	if r.Err() == nil && r.Remaining() != 0 {
		return h, fmt.Errorf("%w: %d trailing bytes", ErrCorruptCheckpoint, r.Remaining())
	}
	return h, r.Err()
}

// readWindows reads appendWindows' encoding into an empty engine.
func readWindows(e *engine, r *binfmt.Reader) error {
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
	return r.Err()
}
