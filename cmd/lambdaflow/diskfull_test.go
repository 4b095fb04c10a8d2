package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// smallDisk mounts a tmpfs of size bytes for the test and returns its path.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the disk-full test mounts a small tmpfs and must run as root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "harden-lambdaflow-test", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("mounting a tmpfs failed (%v: %s); the disk-full test needs root with CAP_SYS_ADMIN", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill leaves about leave bytes free on the file system of dir, with one
// file it returns.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The server writes meanwhile (checkpoints, lake files): space taken
	// between statfs and fallocate makes the request too big; measure
	// again and retry.
	for attempt := 1; ; attempt++ {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * st.Bsize
		err := syscall.Fallocate(int(f.Fd()), 0, 0, free-leave)
		if err == nil {
			return path
		}
		if !errors.Is(err, syscall.ENOSPC) || attempt == 20 {
			t.Fatalf("fallocate %d bytes (attempt %d): %v", free-leave, attempt, err)
		}
	}
}

// TestDiskFull runs the binary on a 64 MiB tmpfs and fills it twice: to
// the last byte, so that the log's own writes (offsets, end markers,
// checkpoints) fail for space, and to below the reserve the log keeps.
// Each time ingest answers 507 at once, /readyz names the log, and once
// space is freed ingest recovers by itself, with every acknowledged event
// in the log once and counted by the view.
func TestDiskFull(t *testing.T) {
	const size = 64 << 20
	disk := smallDisk(t, size)
	s := startServer(t, "testdata/disk.yaml", filepath.Join(disk, "data"))
	c := s.client()
	ctx := context.Background()

	acked, maybe := map[string]bool{}, map[string]bool{}
	batch := 0
	publish := func(n, textSize int) (time.Duration, error) {
		batch++
		var body bytes.Buffer
		var ids []string
		for i := range n {
			id := fmt.Sprintf("b%d-%d", batch, i)
			ids = append(ids, id)
			fmt.Fprintf(&body, `{"id":%q,"k":"k%d","text":%q}`+"\n", id, i%5, strings.Repeat("x", textSize))
		}
		start := time.Now()
		_, err := c.Publish(ctx, "events", body.Bytes(), "", "")
		for _, id := range ids {
			// A refused request may have landed in part (507 says so).
			acked[id], maybe[id] = err == nil, err != nil
		}
		return time.Since(start), err
	}
	metric := func(series string) string {
		t.Helper()
		return metricValue(t, s, series+`{component="log",pipeline="disk"}`)
	}
	const full = `{"error":"the log's disk is full: appends resume once space is freed; events of this request may be durable: retry it with the same ids or Idempotency-Key"}` + "\n"
	fullCounts := func() map[string]int {
		n := map[string]int{}
		for _, c := range []string{"write", "reserve"} {
			v := metricValue(t, s, `lambdaflow_log_disk_full_total{cause="`+c+`",component="log",pipeline="disk"}`)
			if v != "" {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("lambdaflow_log_disk_full_total{cause=%q} = %q: %v", c, v, err)
				}
				n[c] = int(f)
			}
		}
		return n
	}
	sum := func(m map[string]int) int { return m["write"] + m["reserve"] }
	phase := func(name string, leave int64, cause string) {
		t.Helper()
		before := fullCounts()
		if _, err := publish(100, 100); err != nil {
			t.Fatalf("%s: before: %v", name, err)
		}
		filler := fill(t, disk, leave)
		if cause == "write" {
			// The log's next own write (an end marker, a checkpoint, the
			// lake's offsets) fails for space.
			waitFor(t, name+": the log to find its disk full", func() error {
				if v := metric("lambdaflow_log_disk_full"); v != "1" {
					return fmt.Errorf("lambdaflow_log_disk_full %q", v)
				}
				return nil
			})
		}
		// The reserve is looked at every 100 ms at most: a request may
		// still land (there is space) until then.
		var took time.Duration
		var err error
		waitFor(t, name+": a 507", func() error {
			if took, err = publish(10, 100); err == nil {
				return errors.New("accepted")
			}
			return nil
		})
		if e, ok := err.(*client.Error); !ok || e.Status != 507 || string(e.Body) != full || e.RetryAfter <= 0 {
			t.Fatalf("%s: publishing: %v, want 507 %s", name, err, full)
		}
		t.Logf("%s: 507 after %s", name, took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("%s: 507 took %s; it used to take the append timeout (15 s)", name, took)
		}
		h, err := c.Ready(ctx)
		if err != nil || h.Status != "unavailable" || len(h.Down) != 1 || h.Down["log"] != "disk full" {
			t.Fatalf("%s: /readyz: %v %+v, want the log down for a full disk", name, err, h)
		}
		// Each phase finds the disk full once. Filled to the last byte,
		// the free-space check may see it before the log's own write
		// fails: either cause counts (and recovery reloads the log
		// whenever a write failed, whichever was first).
		after := fullCounts()
		if sum(after)-sum(before) != 1 {
			t.Fatalf("%s: disk found full %v times by cause, before %v: want once more", name, after, before)
		}
		if cause == "reserve" && after["reserve"]-before["reserve"] != 1 {
			t.Fatalf("%s: disk found full by cause %v, before %v: want once more below the reserve", name, after, before)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		freed := time.Now()
		waitFor(t, name+": ingest to recover", func() error {
			_, err := publish(10, 100)
			return err
		})
		t.Logf("%s: recovered %s after the space was freed", name, time.Since(freed).Round(time.Millisecond))
		if h, err := c.Ready(ctx); err != nil || h.Status != "ready" {
			t.Fatalf("%s: /readyz after recovery: %v %+v", name, err, h)
		}
		if v := metric("lambdaflow_log_disk_full"); v != "0" {
			t.Fatalf("%s: lambdaflow_log_disk_full %q after recovery, want 0", name, v)
		}
	}
	phase("to the last byte", 0, "write")
	phase("below the reserve", size/10-1<<20, "reserve")

	// Nothing acknowledged is lost, nothing refused is there, offsets have
	// no gaps, and the speed layer counts every event.
	events := readAll(t, s, "events")
	seen := map[string]int{}
	offsets := map[int][]int64{}
	for _, e := range events {
		seen[e.ID]++
		offsets[e.Partition] = append(offsets[e.Partition], e.Offset)
	}
	for id, ok := range acked {
		if ok && seen[id] != 1 {
			t.Errorf("acknowledged event %s is in the log %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 || !acked[id] && !maybe[id] {
			t.Errorf("event %s is in the log %d times (acknowledged %v)", id, n, acked[id])
		}
	}
	for p, offs := range offsets {
		slices.Sort(offs)
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: offset %d at position %d: gaps or repeats", p, o, i)
			}
		}
	}
	waitFor(t, "the view to count every event", func() error {
		var rows []struct{ N int64 }
		if _, err := c.QueryInto(ctx, "counts", nil, time.Time{}, time.Time{}, &rows); err != nil {
			return err
		}
		n := int64(0)
		for _, r := range rows {
			n += r.N
		}
		if n != int64(len(events)) {
			return fmt.Errorf("the view counts %d events, the log has %d", n, len(events))
		}
		return nil
	})
}
