package lakestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	for _, tc := range []struct {
		name string
		size int64 // as announced
		r    io.Reader
	}{
		{"exact", int64(len(body)), bytes.NewReader(body)},
		{"one byte a read", int64(len(body)), iotest.OneByteReader(bytes.NewReader(body))},
		{"not announced", 0, bytes.NewReader(body)},
		{"longer than announced", int64(len(body) - 10), bytes.NewReader(body)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.r, tc.size)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes (%v), want the %d of the body", len(got), err, len(body))
			}
			// An object fetched ahead holds its bytes and no more.
			if tc.name == "exact" && cap(got) != len(body) {
				t.Fatalf("capacity %d for %d bytes", cap(got), len(body))
			}
		})
	}
	for _, n := range []int{3, 0} {
		_, err := readAll(bytes.NewReader(body[:n]), 10)
		if want := fmt.Sprintf("ended after %d of 10 bytes", n); !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), want) {
			t.Fatalf("body of %d bytes announced as 10: %v", n, err)
		}
	}
	cut := errors.New("connection reset")
	if _, err := readAll(io.MultiReader(bytes.NewReader(body), iotest.ErrReader(cut)), int64(len(body))); !errors.Is(err, cut) {
		t.Fatalf("body failing at its end: %v", err)
	}
}

// bufferRead is how bodies were read before readAll: into a bytes.Buffer
// of the announced capacity.
func bufferRead(r io.Reader, size int64) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// BenchmarkReadBody reads object bodies of a lake file's sizes as the S3
// store's Open does, with readAll and with the bytes.Buffer it replaced,
// the two alternated in each iteration. It reports the bytes allocated and
// held per object of each and the time ratio (buffer / readAll).
func BenchmarkReadBody(b *testing.B) {
	for _, size := range []int{2 << 10, 64 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			body := bytes.Repeat([]byte{7}, size)
			var took [2]time.Duration
			var alloc, held [2]uint64
			var ms runtime.MemStats
			for range b.N {
				for i, read := range []func(io.Reader, int64) ([]byte, error){readAll, bufferRead} {
					runtime.ReadMemStats(&ms)
					before := ms.TotalAlloc
					start := time.Now()
					got, err := read(bytes.NewReader(body), int64(size))
					took[i] += time.Since(start)
					runtime.ReadMemStats(&ms)
					if err != nil || len(got) != size {
						b.Fatalf("read %d bytes: %v", len(got), err)
					}
					alloc[i] += ms.TotalAlloc - before
					held[i] += uint64(cap(got))
				}
			}
			n := uint64(b.N)
			b.ReportMetric(float64(alloc[0]/n), "alloc-B/obj")
			b.ReportMetric(float64(held[0]/n), "held-B/obj")
			b.ReportMetric(float64(alloc[1]/n), "buffer-alloc-B/obj")
			b.ReportMetric(float64(held[1]/n), "buffer-held-B/obj")
			b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "ratio")
		})
	}
}
