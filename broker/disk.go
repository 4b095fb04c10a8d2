package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrDiskFull is returned (wrapped) by Append while the log's disk is full:
// nothing of the entry was stored. Ingest answers 507. An embedded log
// recovers by itself once space is freed (see diskWatch); Ready reports it
// meanwhile.
var ErrDiskFull error = &sentinel{"broker: the log's disk is full", "disk full"}

// Limits of the disk watch.
const (
	// maxReserve is the free space below which the embedded log's disk
	// counts as full; a disk smaller than ten times it keeps a tenth free.
	maxReserve = 64 << 20
	// diskCheckEvery spaces the free-space checks of the append path.
	diskCheckEvery = 100 * time.Millisecond
	// diskPollEvery is how often a full disk is checked for space.
	diskPollEvery = 250 * time.Millisecond
)

// diskWatch keeps the embedded log from running its disk out of space and
// gets it going again afterwards. JetStream itself does not: a stream whose
// write failed for space keeps the error until it is reloaded, and the
// publisher gets no answer at all, so without this every append would wait
// for its timeout and fail for good.
//
//   - Appends are refused at once (ErrDiskFull) while less than the reserve
//     is free, so the log's own writes (the partitions, offsets,
//     checkpoints) rarely hit the wall.
//   - A write that did hit it is seen in the server's log ("no space left
//     on device"); appends waiting for their answer fail at once.
//   - Once the reserve is free again, JetStream is reloaded if a write
//     failed (its streams reopen from disk: what was acknowledged was
//     fsynced, what failed was never acknowledged), and appends resume.
type diskWatch struct {
	dir     string
	reserve uint64
	logf    func(msg string, args ...any)
	gauge   prometheus.Gauge       // lambdaflow_log_disk_full
	causes  *prometheus.CounterVec // lambdaflow_log_disk_full_total by cause

	full      atomic.Bool  // appends are refused
	failed    atomic.Bool  // a write failed for space: reload JetStream before resuming
	lastCheck atomic.Int64 // UnixNano of the append path's last look
	free      atomic.Uint64

	mu     sync.Mutex
	ctx    context.Context // done when the disk is found full
	cancel context.CancelFunc
	wake   chan struct{} // tells the recovery loop the disk is full
}

func newDiskWatch(dir string, logf func(string, ...any), gauge prometheus.Gauge, causes *prometheus.CounterVec) *diskWatch {
	d := &diskWatch{dir: dir, logf: logf, gauge: gauge, causes: causes, wake: make(chan struct{}, 1)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.reserve = maxReserve
	if free, total, err := statDisk(dir); err == nil {
		d.reserve = min(maxReserve, total/10)
		d.free.Store(free)
	}
	return d
}

// statDisk returns the free and total bytes of the file system holding dir.
func statDisk(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// refuse reports whether appends must be refused now. It looks at the disk
// at most every diskCheckEvery.
func (d *diskWatch) refuse(now time.Time) bool {
	if d.full.Load() {
		return true
	}
	last := d.lastCheck.Load()
	if now.UnixNano()-last < int64(diskCheckEvery) || !d.lastCheck.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	free, _, err := statDisk(d.dir)
	if err != nil {
		return false
	}
	d.free.Store(free)
	if free < d.reserve {
		d.setFull("reserve", "free space below the reserve")
		return true
	}
	return false
}

// serverError is told of each error nats-server logs; a write that failed
// for space makes the disk full.
func (d *diskWatch) serverError(msg string) {
	if !strings.Contains(msg, "no space left on device") {
		return
	}
	d.failed.Store(true)
	d.setFull("write", "a write failed: no space left on device")
}

func (d *diskWatch) setFull(cause, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full.Swap(true) {
		return
	}
	d.cancel()
	d.gauge.Set(1)
	d.causes.WithLabelValues(cause).Inc()
	d.logf("broker: the log's disk is full; refusing appends until space is freed", "why", why,
		"dir", d.dir, "free_bytes", d.free.Load(), "reserve_bytes", d.reserve)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// fullCtx returns a context that is done once the disk is found full.
func (d *diskWatch) fullCtx() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

// fullErr is Ready's error while the disk is full.
func (d *diskWatch) fullErr() error {
	return fmt.Errorf("%w: %d MiB free under %s, less than the %d MiB the log keeps in reserve; appends resume once that much is free",
		ErrDiskFull, d.free.Load()>>20, d.dir, d.reserve>>20)
}

// err is the error of an append refused for space.
func (d *diskWatch) err(topic string, part int) error {
	return fmt.Errorf("%w: append to %q partition %d refused: %d MiB free under %s, less than the %d MiB the log keeps in reserve; free some space and appends resume",
		ErrDiskFull, topic, part, d.free.Load()>>20, d.dir, d.reserve>>20)
}

// watchDisk waits for the disk to fill, then for space, then resumes appends
// (reloading JetStream first if a write failed), until stop is closed.
func (b *Broker) watchDisk(d *diskWatch) {
	for {
		select {
		case <-b.stop:
			return
		case <-d.wake:
		}
		t := time.NewTicker(diskPollEvery)
		for d.full.Load() {
			select {
			case <-b.stop:
				t.Stop()
				return
			case <-t.C:
			}
			free, _, err := statDisk(d.dir)
			if err != nil {
				continue
			}
			d.free.Store(free)
			if free < d.reserve {
				continue
			}
			if d.failed.Load() {
				if err := b.reloadJetStream(); err != nil {
					b.log.Error("broker: reloading JetStream after the disk filled", "err", err)
					continue
				}
				d.failed.Store(false)
			}
			b.forgetEnds()
			d.mu.Lock()
			d.ctx, d.cancel = context.WithCancel(context.Background())
			d.full.Store(false)
			d.gauge.Set(0)
			d.mu.Unlock()
			b.log.Info("broker: the log's disk has space again; appends resume", "free_bytes", free)
		}
		t.Stop()
	}
}

// reloadJetStream restarts the embedded server's JetStream, which reopens
// every stream from disk and so drops the write errors they keep.
func (b *Broker) reloadJetStream() error {
	cfg := b.ns.JetStreamConfig()
	if cfg == nil {
		return errors.New("no JetStream configuration")
	}
	copied := *cfg
	// The server keeps StoreDir with its "jetstream" folder appended, and
	// appends it again to what it is given.
	copied.StoreDir = b.disk.dir
	cfg = &copied
	if err := b.ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := b.ns.EnableJetStream(cfg); err != nil {
		return fmt.Errorf("enable: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.js.AccountInfo(ctx)
	return err
}

// forgetEnds makes every partition read its end from the log again before
// its next append: appends that failed may have left the cached end wrong.
func (b *Broker) forgetEnds() {
	for _, t := range b.topics {
		for _, p := range t.parts {
			p.sem <- struct{}{}
			p.known = false
			<-p.sem
		}
	}
}

// JetStream's error codes for exhausted resources, which nats.go does not
// name.
const (
	jsInsufficientResources    jetstream.ErrorCode = 10023
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// storageExhausted reports whether a JetStream API error says the
// server's or the account's storage is exhausted (an external cluster's
// way to say its disk is full).
func storageExhausted(err error) bool {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		c := je.APIError().ErrorCode
		return c == jsInsufficientResources || c == jsStorageResourcesExceeded
	}
	return false
}
