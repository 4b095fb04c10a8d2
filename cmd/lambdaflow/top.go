package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
)

// topCmd shows the live numbers of a running process in a terminal: ingest
// rate per topic, end offsets, consumer lag worst first, late events,
// watermarks, checkpoints, batch jobs and sink health. On a terminal it
// redraws in place every interval, cut to the terminal's size, and reads
// keys (q quits, s changes how the consumers are sorted); otherwise it
// prints plain snapshots, so it can be logged or tested. A poll that fails
// is reported in the frame, over the last numbers it had, and top goes on.
func topCmd(ctx context.Context, args []string, std stdio, env lookupEnv) error {
	fs := newFlags("top", "[-n N] [--once] [--interval D] [--sort read|committed|name]", std)
	conn := clientFlags(fs, env)
	n := fs.Int("n", 0, "stop after N polls (0: until q or interrupted)")
	once := fs.Bool("once", false, "poll once, print the snapshot and exit; non-zero if the poll failed (rates need two polls: they show as –)")
	interval := fs.Duration("interval", time.Second, "time between polls")
	sortBy := fs.String("sort", "read", "order of the consumers: read (worst read lag first), committed (worst committed lag first) or name")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *once {
		*n = 1
	}
	if *n < 0 || *interval <= 0 {
		fmt.Fprintln(std.err, "lambdaflow top: -n must be ≥ 0 and --interval > 0")
		return errUsage
	}
	order, ok := lagOrderNamed(*sortBy)
	if !ok {
		fmt.Fprintf(std.err, "lambdaflow top: --sort %q: want read, committed or name\n", *sortBy)
		return errUsage
	}
	c := conn()
	t := &top{c: c, now: time.Now, order: order}
	scr := newScreen(std.out)
	defer scr.close()
	polls, shown := 0, 0
	for *n == 0 || polls < *n {
		pctx, cancel := context.WithTimeout(ctx, max(*interval, 5*time.Second))
		err := t.poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		polls++
		if err == nil {
			shown++
		}
		if err := scr.draw(t); err != nil {
			return err
		}
		if *once && err != nil {
			return err
		}
		if *n != 0 && polls >= *n {
			break
		}
		// Keys redraw at once; the next poll waits for the interval.
		next := time.After(*interval)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-next:
				break wait
			case k := <-scr.keys:
				switch k {
				case 'q', 'Q', 3: // 3: Ctrl-C, which raw mode delivers as a key
					return nil
				case 's', 'S':
					t.order = t.order.next()
					if err := scr.draw(t); err != nil {
						return err
					}
				}
			}
		}
	}
	if shown == 0 && t.err != nil {
		return fmt.Errorf("no poll succeeded: %w", t.err)
	}
	return nil
}

// screen is where frames go: a terminal (redrawn in place, cut to its size,
// keys read from it) or anything else (snapshots one after the other).
type screen struct {
	out     io.Writer
	tty     *os.File // the terminal keys come from; nil when out is not one
	fd      int      // out's descriptor, for its size
	restore func()
	keys    chan byte
	wg      sync.WaitGroup
	frames  int
}

func newScreen(out io.Writer) *screen {
	s := &screen{out: out, keys: make(chan byte, 8)}
	f, ok := out.(*os.File)
	if !ok || !isTerminal(out) {
		return s
	}
	s.fd = int(f.Fd())
	// Keys come from the controlling terminal, opened apart from stdin so
	// that its reads can be ended (Close) and the reader waited for. Its
	// descriptor is used through SyscallConn: Fd would make it blocking,
	// and a blocked Read would outlive Close.
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return s
	}
	raw, err := tty.SyscallConn()
	if err != nil {
		tty.Close()
		return s
	}
	var state *term.State
	if cerr := raw.Control(func(fd uintptr) { state, err = term.MakeRaw(int(fd)) }); cerr != nil || err != nil {
		tty.Close()
		return s
	}
	s.tty = tty
	s.restore = func() { raw.Control(func(fd uintptr) { term.Restore(int(fd), state) }) }
	// Hide the cursor while drawing; close shows it again.
	io.WriteString(out, "\x1b[?25l")
	s.wg.Go(func() {
		buf := make([]byte, 16)
		for {
			n, err := tty.Read(buf)
			for _, b := range buf[:n] {
				select {
				case s.keys <- b:
				default: // keys pressed faster than handled are dropped
				}
			}
			if err != nil {
				return
			}
		}
	})
	return s
}

// draw writes one frame: on a terminal over the last one, cut to its size.
func (s *screen) draw(t *top) error {
	var frame string
	if s.tty != nil {
		w, h, err := term.GetSize(s.fd)
		if err != nil || w <= 0 || h <= 0 {
			w, h = 80, 24
		}
		lines := t.frame(w, h, true)
		// Raw mode does not turn \n into \r\n: each line starts at column 0.
		frame = "\x1b[H\x1b[2J" + strings.Join(lines, "\r\n")
	} else {
		frame = strings.Join(t.frame(0, 0, false), "\n") + "\n"
		if s.frames > 0 {
			frame = "\n" + frame
		}
	}
	s.frames++
	_, err := io.WriteString(s.out, frame)
	return err
}

// close gives the terminal back as it was and waits for the key reader.
func (s *screen) close() {
	if s.tty == nil {
		return
	}
	s.restore()
	io.WriteString(s.out, "\x1b[?25h\r\n")
	s.tty.Close() // ends the reader's Read
	s.wg.Wait()
}

// top samples the HTTP API of one process and keeps the recent samples, so
// that rates are averaged over rateSpan instead of the last interval.
type top struct {
	c     *client.Client
	now   func() time.Time
	order lagOrder

	samples []*topSample // oldest first, the last rateSpan and a bit
	err     error        // the last poll's failure, nil once one succeeds
	errAt   time.Time
	fails   int // polls failed in a row
}

// rateSpan is how far back rates look: long enough to smooth the steps of
// consumers that read in batches, short enough to follow a change.
const rateSpan = 10 * time.Second

// topSample is the process's state at one moment. Parts the process does
// not run (no batch layer, no sinks) are nil.
type topSample struct {
	at    time.Time
	ready string
	stats *api.Stats
	jobs  []api.JobStatus
	sinks []api.SinkStatus
}

// poll takes a sample; a failure keeps the samples there are and is shown
// with them.
func (t *top) poll(ctx context.Context) error {
	s, err := t.sample(ctx)
	if err != nil {
		t.err, t.errAt = err, t.now()
		t.fails++
		return err
	}
	t.err, t.fails = nil, 0
	t.add(s)
	return nil
}

// add keeps s and drops samples no rate needs any more.
func (t *top) add(s *topSample) {
	t.samples = append(t.samples, s)
	keep := 0
	for keep < len(t.samples)-2 && s.at.Sub(t.samples[keep+1].at) >= rateSpan {
		keep++
	}
	t.samples = t.samples[keep:]
}

func (t *top) sample(ctx context.Context) (*topSample, error) {
	s := &topSample{at: t.now()}
	var err error
	if s.stats, err = t.c.Stats(ctx); err != nil {
		return nil, err
	}
	jobs, err := t.c.Jobs(ctx)
	if here, err := optionalPart(err); err != nil {
		return nil, err
	} else if here {
		s.jobs = append([]api.JobStatus{}, jobs...)
	}
	sk, err := t.c.Sinks(ctx)
	if here, err := optionalPart(err); err != nil {
		return nil, err
	} else if here {
		s.sinks = append([]api.SinkStatus{}, sk...)
	}
	s.ready = readiness(ctx, t.c)
	return s, nil
}

// rate is how fast value grew over the kept samples (at most about
// rateSpan back); ok is false with fewer than two.
func (t *top) rate(value func(*topSample) (float64, bool)) (float64, bool) {
	if len(t.samples) < 2 {
		return 0, false
	}
	last := t.samples[len(t.samples)-1]
	first := t.samples[0]
	for _, s := range t.samples[:len(t.samples)-1] {
		if last.at.Sub(s.at) <= rateSpan {
			first = s
			break
		}
	}
	a, ok1 := value(first)
	b, ok2 := value(last)
	dt := last.at.Sub(first.at).Seconds()
	if !ok1 || !ok2 || dt <= 0 {
		return 0, false
	}
	return max(0, (b-a)/dt), true
}

// readiness summarises /readyz: "ready", or "not ready: " and the parts
// that are down.
func readiness(ctx context.Context, c *client.Client) string {
	h, err := c.Ready(ctx)
	switch {
	case err != nil:
		return "readiness unknown: " + err.Error()
	case h.Status == "ready":
		return h.Status
	}
	return "not ready: " + strings.Join(h.Parts, ", ")
}

// optionalPart tells a part the process does not run (404: here is false)
// from a failure.
func optionalPart(err error) (here bool, _ error) {
	if client.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// errOneLine is an error as one short line, for a frame's header.
func errOneLine(err error, n int) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return oneLine(ce.Error(), n)
	}
	return oneLine(err.Error(), n)
}
