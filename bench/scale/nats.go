package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// natsModule is nats-server's main package, at the version go.mod requires
// (the one the embedded broker runs). The harness runs it as a process of
// its own: only the broker package talks to NATS in this module.
const natsModule = "github.com/nats-io/nats-server/v2"

// buildNATS builds nats-server into dir and returns its path.
func buildNATS(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	if _, err := measure.Command(ctx, "", nil, "go", "build", "-o", bin, natsModule); err != nil {
		return "", err
	}
	return bin, nil
}

// natsServer is a nats-server child process with JetStream on a store.
type natsServer struct {
	cmd  *exec.Cmd
	done chan error
	url  string
}

// startNATS runs bin with JetStream on store, on a free loopback port, and
// waits until it accepts connections.
func startNATS(ctx context.Context, bin, store string) (*natsServer, error) {
	port, err := measure.FreePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(store + ".log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &natsServer{cmd: cmd, done: make(chan error, 1), url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	go func() { n.done <- cmd.Wait() }()
	alive := func() error {
		select {
		case err := <-n.done:
			n.done <- err
			return fmt.Errorf("nats-server exited (%v); see %s.log", err, store)
		default:
			return nil
		}
	}
	if err := measure.WaitPort(ctx, port, 30*time.Second, alive); err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// stop shuts the server down (SIGTERM, then SIGKILL after 30 s).
func (n *natsServer) stop() {
	syscall.Kill(n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-n.done:
		n.done <- err
	case <-time.After(30 * time.Second):
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		err := <-n.done
		n.done <- err
	}
}

func (n *natsServer) cpuSeconds() (float64, error) {
	if n == nil {
		return 0, errors.New("no nats-server")
	}
	return measure.CPUSeconds(n.cmd.Process.Pid)
}
