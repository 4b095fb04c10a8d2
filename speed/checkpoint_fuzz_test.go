package speed

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// FuzzDecodePart feeds partition checkpoints to the decoder with a valid
// checksum appended, so that the fuzzer reaches the body instead of
// stopping at the CRC: whatever the body, decoding returns an error that
// wraps ErrCorruptCheckpoint or ErrCheckpointVersion, or a state that
// encodes and decodes again to the same windows.
func FuzzDecodePart(f *testing.F) {
	ts, data := testPartCheckpointN(f, 12)
	f.Add(data[:len(data)-4])
	f.Add([]byte(checkpointMagic))
	p := testPipeline(f, pipelineOpts{partitions: 2})
	em := newEmitter(p, p.ViewByName("all"), newMemStore())
	f.Fuzz(func(t *testing.T, body []byte) {
		data := binary.LittleEndian.AppendUint32(body[:len(body):len(body)], crc32.Checksum(body, castagnoli))
		e1, m := newPartialEngine(ts.pl), newMerger(ts.pl, 2)
		h, err := decodePart(data, e1, m)
		if err != nil {
			if !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
				t.Fatalf("error %v wraps neither ErrCorruptCheckpoint nor ErrCheckpointVersion", err)
			}
			return
		}
		if h.part < 0 || h.part >= 2 {
			return // the reader refuses a checkpoint of another partition before using it
		}
		again, err := encodePart(nil, h.view, h.def, h.savedAt, h.part, h.epoch, e1, m, h.partialsNext, em)
		if err != nil {
			return // a decoded state the encoder refuses (e.g. a part the emitter lacks) is not a crash
		}
		e2, m2 := newPartialEngine(ts.pl), newMerger(ts.pl, 2)
		if _, err := decodePart(again, e2, m2); err != nil {
			t.Fatalf("re-encoded checkpoint: %v", err)
		}
		if e2.OpenWindows() != e1.OpenWindows() || m2.OpenWindows() != m.OpenWindows() || e2.Next(0) != e1.Next(0) {
			t.Fatalf("re-encoded checkpoint restores %d/%d windows at %d, had %d/%d at %d",
				e2.OpenWindows(), m2.OpenWindows(), e2.Next(0), e1.OpenWindows(), m.OpenWindows(), e1.Next(0))
		}
	})
}
