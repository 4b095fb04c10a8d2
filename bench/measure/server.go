package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServerConfig says how to start one `lambdaflow run` child process.
type ServerConfig struct {
	Bin      string   // the lambdaflow binary
	Pipeline string   // the pipeline file
	Dir      string   // its directory: the log file lambdaflow.log goes here
	Roles    string   // --role; empty runs every role
	Env      []string // added to the harness's environment
	// Wrap, when set, runs the binary through this command line, which
	// must end by exec'ing its arguments (e.g. a shell that first moves
	// itself into a cgroup), so that limits apply from the first
	// instruction.
	Wrap []string
}

// Server is a `lambdaflow run` child process.
type Server struct {
	URL  string // http://127.0.0.1:port
	Log  string // its log file
	cmd  *exec.Cmd
	done chan error
}

// StartServer starts lambdaflow on a free port and waits until /readyz
// answers 200 (at most a minute).
func StartServer(ctx context.Context, c ServerConfig) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(c.Dir, "lambdaflow.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{c.Bin, "run", "-c", c.Pipeline, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json"}
	if c.Roles != "" {
		args = append(args, "--role", c.Roles)
	}
	args = append(append([]string(nil), c.Wrap...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, done: make(chan error, 1), URL: fmt.Sprintf("http://127.0.0.1:%d", port), Log: logPath}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("lambdaflow exited during startup (%v); see %s", err, logPath)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("lambdaflow not ready after 60 s; see %s", logPath)
		}
	}
}

// Pid is the child's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM (a soft stop) and waits up to a minute, then kills.
func (s *Server) Stop() error {
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(time.Minute):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		err := <-s.done
		s.done <- err
		return fmt.Errorf("lambdaflow did not stop within a minute of SIGTERM; killed (see %s)", s.Log)
	}
}

// Kill ends the process at once (SIGKILL to its process group, as a
// crash would) and waits for it.
func (s *Server) Kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	err := <-s.done
	s.done <- err
}

// PeakRSS is the process's VmHWM in bytes.
func (s *Server) PeakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}

// CPUSeconds is the user + system CPU time the process has used so far,
// all threads.
func (s *Server) CPUSeconds() (float64, error) { return CPUSeconds(s.cmd.Process.Pid) }

// CPUSeconds is the user + system CPU time process pid has used so far,
// all threads (from /proc/PID/stat, in clock ticks of 1/100 s).
func CPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis are fixed: utime and stime are the 12th and 13th.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / 100, nil
}

// GetJSON decodes the answer to GET path, which must be 200.
func (s *Server) GetJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// Publish posts lines (NDJSON events) to url in bodies of size events from
// clients clients, in order (each client takes the next body), and returns
// when every request has been answered 200.
func Publish(ctx context.Context, url string, lines []string, clients, size int) error {
	var bodies [][]byte
	for i := 0; i < len(lines); i += size {
		bodies = append(bodies, []byte(strings.Join(lines[i:min(i+size, len(lines))], "\n")+"\n"))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	next := make(chan []byte)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for body := range next {
				if err := post(ctx, client, url, body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for _, body := range bodies {
		select {
		case next <- body:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// post sends one body, retrying while the server answers 429/503 (back
// pressure) as a client should.
func post(ctx context.Context, client *http.Client, url string, body []byte) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 200:
			return nil
		case (resp.StatusCode == 429 || resp.StatusCode == 503) && attempt < 100:
			time.Sleep(50 * time.Millisecond)
		default:
			return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, msg)
		}
	}
}
