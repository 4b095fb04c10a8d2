package speed

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// openWindowsText lists the engine's open windows of a tumbling or hopping
// view, one line each: start, end, group key (hex) and the finalised values.
func openWindowsText(e *engine) string {
	var lines []string
	for _, w := range e.windows {
		for key, s := range w.groups {
			var b strings.Builder
			fmt.Fprintf(&b, "%d %d %x:", w.Start, w.End, key)
			for _, v := range e.plan.Finalize(&s.state) {
				fmt.Fprintf(&b, " %t|%q|%d|%x", v.Valid, v.S, v.I, math.Float64bits(v.F))
			}
			lines = append(lines, b.String())
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestCheckpointVersion1Golden restores a checkpoint written before
// aggregate states moved to version 2 (real XXH64 string hashes; see
// pipelines/aggregate StateVersion): view "all" of the test pipeline with 2
// partitions and lateness 1h, 60 events in open windows, hosts and notes
// both shorter and longer than 32 bytes. testdata/checkpoint_v1.windows is
// what that build's engine held when it wrote the checkpoint; the restored
// engine must hold exactly that, and write it again as a checkpoint that
// restores the same.
func TestCheckpointVersion1Golden(t *testing.T) {
	raw, err := os.ReadFile("testdata/checkpoint_v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	data, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/checkpoint_v1.windows")
	if err != nil {
		t.Fatal(err)
	}
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "1h"})
	s, _ := newTestSpeed(t, p, newMemLog(p), newMemStore())
	restore := func(data []byte) *viewRun {
		t.Helper()
		h, cr, err := decodeCheckpoint(data)
		if err != nil {
			t.Fatal(err)
		}
		vs := s.views[0]
		if vs.view.Name != "all" || h.def != vs.def {
			t.Fatalf("checkpoint of view %q definition %#x; the test pipeline's %q has %#x", h.view, h.def, vs.view.Name, vs.def)
		}
		r := &viewRun{s: s, vs: vs, e: newEngine(vs.plan, 2), em: newEmitter(s.p, vs.view, s.store)}
		if err := r.restoreFrom(h, cr); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := restore(data)
	if got := openWindowsText(r.e); got != string(want) {
		t.Fatalf("restored windows differ from those checkpointed:\n%s", diffLines(string(want), got))
	}
	again, _, err := r.encode(timeAt(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := openWindowsText(restore(again).e); got != string(want) {
		t.Fatalf("windows differ after a second checkpoint:\n%s", diffLines(string(want), got))
	}
}

// FuzzDecodeCheckpoint: whatever the bytes, restoring them either works or
// fails with ErrCorruptCheckpoint or ErrCheckpointVersion; it never panics.
func FuzzDecodeCheckpoint(f *testing.F) {
	p := testPipeline(f, pipelineOpts{partitions: 2, lateness: "1h"})
	s, err := New(p, newMemLog(p), newMemStore(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/checkpoint_v1.hex")
	if err != nil {
		f.Fatal(err)
	}
	golden, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(golden[:len(golden)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fuzzed checkpoint rarely keeps its CRC; the CRC is fixed up
		// half the time so the decoder behind it gets exercised too.
		if len(data) > 10 && data[len(data)-1]&1 == 0 {
			data = append(data[:len(data)-4:len(data)-4], 0, 0, 0, 0)
			binary.LittleEndian.PutUint32(data[len(data)-4:], crc32.Checksum(data[:len(data)-4], castagnoli))
		}
		h, cr, err := decodeCheckpoint(data)
		if err == nil {
			vs := s.views[0]
			r := &viewRun{s: s, vs: vs, e: newEngine(vs.plan, 2), em: newEmitter(s.p, vs.view, s.store)}
			err = r.restoreFrom(h, cr)
		}
		if err != nil && !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
			t.Fatalf("error %v wraps neither ErrCorruptCheckpoint nor ErrCheckpointVersion", err)
		}
	})
}
