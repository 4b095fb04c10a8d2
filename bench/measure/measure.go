// Package measure holds what the benchmark harnesses under bench/ share:
// running Go benchmarks and other programs as child processes, reading
// their figures, taking medians and printing tables. It knows nothing of
// Lambdaflow's packages: the harnesses measure the product from outside, or
// through its own Go benchmarks, so that their figures are the ones
// `make bench` reports.
package measure

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command runs name with args in dir (empty: the current one) with env
// added to the harness's environment, and returns its standard output. On
// failure the error carries the last lines of standard error. The child
// gets its own process group; cancelling ctx sends it SIGTERM, then
// SIGKILL after 10 s.
func Command(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, tail(out.String(), 20), tail(errb.String(), 30))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// Bench is one result line of a Go benchmark: its name (without the
// -GOMAXPROCS suffix) and every value by unit ("ns/op", "events/s", …).
type Bench struct {
	Name   string
	Values map[string]float64
	Logs   []string // lines the benchmark logged (b.Log), trimmed
}

// GoTestBinary builds the test binary of pkg (e.g. "./ingest") into dir
// and returns its path.
func GoTestBinary(ctx context.Context, repo, pkg, dir string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg)+".test")
	if _, err := Command(ctx, repo, nil, "go", "test", "-c", "-o", bin, pkg); err != nil {
		return "", err
	}
	return bin, nil
}

// GoBench runs the benchmarks of a test binary that match pattern, in
// pkgDir (as `go test` would), and returns their results.
func GoBench(ctx context.Context, bin, pkgDir, pattern, benchtime string, env []string) ([]Bench, error) {
	out, err := Command(ctx, pkgDir, env, bin, "-test.run", "^$", "-test.bench", pattern,
		"-test.benchtime", benchtime, "-test.count", "1", "-test.benchmem")
	if err != nil {
		return nil, err
	}
	res := ParseGoBench(out)
	if len(res) == 0 {
		return nil, fmt.Errorf("%s -test.bench %s: no benchmark ran\n%s", bin, pattern, tail(out, 20))
	}
	return res, nil
}

// ParseGoBench reads the result lines of `go test -bench` output and the
// log lines that follow each.
func ParseGoBench(out string) []Bench {
	var res []Bench
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") && isInt(f[1]) {
			name := f[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 && isInt(name[i+1:]) {
				name = name[:i]
			}
			b := Bench{Name: name, Values: map[string]float64{}}
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					b.Values[f[i+1]] = v
				}
			}
			res = append(res, b)
			continue
		}
		if len(res) > 0 && strings.HasPrefix(line, "    ") {
			last := &res[len(res)-1]
			last.Logs = append(last.Logs, strings.TrimSpace(line))
		}
	}
	return res
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// Find returns the benchmark named name.
func Find(res []Bench, name string) (Bench, error) {
	for _, b := range res {
		if b.Name == name {
			return b, nil
		}
	}
	var names []string
	for _, b := range res {
		names = append(names, b.Name)
	}
	return Bench{}, fmt.Errorf("benchmark %s not in the output (got %v)", name, names)
}

// Value returns the benchmark's value in unit, or an error naming both.
func (b Bench) Value(unit string) (float64, error) {
	v, ok := b.Values[unit]
	if !ok {
		return 0, fmt.Errorf("%s reported no %q", b.Name, unit)
	}
	return v, nil
}

// Fields parses the first line of out that starts with prefix and holds
// space-separated key=value pairs (e.g. "result events=10 cpu_s=1.5").
func Fields(out, prefix string) (map[string]string, error) {
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, prefix+" ")
		if !ok {
			continue
		}
		m := map[string]string{}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%q: %q is not key=value", line, kv)
			}
			m[k] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("no %q line in\n%s", prefix, tail(out, 20))
}

// Float returns m[key] as a number, or an error naming the key.
func Float(m map[string]string, key string) (float64, error) {
	v, err := strconv.ParseFloat(m[key], 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", key, m[key], err)
	}
	return v, nil
}

// Median of xs (the mean of the middle two for an even count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitPort polls until something accepts connections on 127.0.0.1:port,
// the process behind alive stops (alive returns an error), or the timeout.
func WaitPort(ctx context.Context, port int, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if err := alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s", port, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LoadAverage is the 1-minute load average, or -1 if unknown; harnesses
// print it with each round so a busy machine shows in their output.
func LoadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// Logf writes a timestamped progress line to w.
func Logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Row is one comparison in a table: a figure of Lambdaflow and the same
// figure of another system, one sample of each per round.
type Row struct {
	Pair     string // "ingest", "speed", …
	What     string // what is measured, e.g. "durable, 32 clients × 100 events"
	Unit     string // e.g. "events/s"
	Lower    bool   // lower is better (latency, bytes)
	Peer     string // the other system, with its settings
	Ours     []float64
	Theirs   []float64
	Commands string // how to run each side, for BENCHMARKS.md
}

// Ratio is median(Ours) ÷ median(Theirs); 0 when either is missing.
func (r *Row) Ratio() float64 {
	o, t := Median(r.Ours), Median(r.Theirs)
	if o == 0 || t == 0 {
		return 0
	}
	return o / t
}

// Ahead says whether Lambdaflow's median is the better one.
func (r *Row) Ahead() bool {
	if r.Lower {
		return r.Ratio() < 1
	}
	return r.Ratio() > 1
}

// Table prints rows as a Markdown table: medians, the samples behind them
// and the ratio.
func Table(w io.Writer, rows []*Row) {
	fmt.Fprintln(w, "| pair | what | Lambdaflow | peer | peer figure | ours ÷ peer |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		better := "higher is better"
		if r.Lower {
			better = "lower is better"
		}
		verdict := "behind"
		if r.Ahead() {
			verdict = "ahead"
		}
		fmt.Fprintf(w, "| %s | %s (%s, %s) | %s (%s) | %s | %s (%s) | %.2f× (%s) |\n",
			r.Pair, r.What, r.Unit, better, Human(Median(r.Ours)), samples(r.Ours), r.Peer,
			Human(Median(r.Theirs)), samples(r.Theirs), r.Ratio(), verdict)
	}
}

func samples(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = Human(x)
	}
	return strings.Join(s, " / ")
}

// Human formats x with three significant figures and a k/M suffix.
func Human(x float64) string {
	ax := x
	if ax < 0 {
		ax = -ax
	}
	switch {
	case ax >= 1e6:
		return strconv.FormatFloat(x/1e6, 'f', sig(ax/1e6), 64) + "M"
	case ax >= 1e4:
		return strconv.FormatFloat(x/1e3, 'f', sig(ax/1e3), 64) + "k"
	default:
		return strconv.FormatFloat(x, 'f', sig(ax), 64)
	}
}

func sig(ax float64) int {
	switch {
	case ax >= 100:
		return 0
	case ax >= 10:
		return 1
	case ax >= 1:
		return 2
	default:
		return 3
	}
}
