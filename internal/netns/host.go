package netns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Host is one network namespace on a Network: its own interfaces, routes
// and ports, reachable at IP from the test process and the other hosts.
type Host struct {
	Name  string     // the namespace's name (for `ip netns exec NAME …`)
	Label string     // the label given to AddHost
	IP    netip.Addr // eth0's address

	nw   *Network
	veth string // root-namespace end of the host's veth, on the bridge
	peer string // the other end's name before it becomes eth0

	mu      sync.Mutex
	blocked map[netip.Addr]bool // peers whose traffic is dropped
	loss    int                 // percent of packets dropped each way
}

// Addr returns "IP:port".
func (h *Host) Addr(port int) string {
	return net.JoinHostPort(h.IP.String(), strconv.Itoa(port))
}

// Command returns a command that runs name with args inside the host's
// namespace (`ip netns exec`, which execs the program: the process's pid is
// the program's). The namespace's processes are killed when the network is
// removed, but the caller still owns the command: it must Wait for it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run runs name with args in the host and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s on %s: %w: %s", name, h.Label, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Cut takes the host off the network: its veth goes down on the bridge
// side, so nothing passes either way (the test process cannot reach it
// either). Processes on the host keep running; their connections time out
// as on a pulled cable.
func (h *Host) Cut() error { return ip("link", "set", h.veth, "down") }

// Heal puts the host back on the network after Cut.
func (h *Host) Heal() error { return ip("link", "set", h.veth, "up") }

// Block drops every packet between the host and peers, in both directions,
// while both stay reachable from the test process and the other hosts: a
// partition between two sites. Needs nft.
func (h *Host) Block(peers ...*Host) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocked == nil {
		h.blocked = make(map[netip.Addr]bool)
	}
	for _, p := range peers {
		h.blocked[p.IP] = true
	}
	return h.applyRules()
}

// Unblock undoes Block for peers.
func (h *Host) Unblock(peers ...*Host) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range peers {
		delete(h.blocked, p.IP)
	}
	return h.applyRules()
}

// SetLoss drops percent (0–100) of the host's packets at random, each way,
// on eth0. 0 removes the loss. Needs nft.
func (h *Host) SetLoss(percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("netns: loss %d%%: want 0 to 100", percent)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loss = percent
	return h.applyRules()
}

// nftTable is the host's table of filter rules, rebuilt whole by each
// change so that the rules are always what Block and SetLoss last said.
const nftTable = "lambdaflow_netns"

func (h *Host) applyRules() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("%w: the nft command is missing: install nftables (apt-get install nftables)", ErrUnsupported)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\ndelete table inet %s\ntable inet %s {\n", nftTable, nftTable, nftTable)
	for _, hook := range []string{"input", "output"} {
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority 0; policy accept;\n", hook, hook)
		dir := map[string]string{"input": "saddr", "output": "daddr"}[hook]
		iface := map[string]string{"input": "iifname", "output": "oifname"}[hook]
		for a := range h.blocked {
			fmt.Fprintf(&b, "    ip %s %s drop\n", dir, a)
		}
		switch {
		case h.loss == 100:
			fmt.Fprintf(&b, "    %s \"eth0\" drop\n", iface)
		case h.loss > 0:
			fmt.Fprintf(&b, "    %s \"eth0\" numgen random mod 100 < %d drop\n", iface, h.loss)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	cmd := exec.Command("ip", "netns", "exec", h.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns: nft rules on %s: %w: %s", h.Label, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SetDelay delays every packet the host sends on eth0 by d (tc netem), so
// a round trip to another host takes d longer (2d between two delayed
// hosts). 0 removes the delay. It wraps ErrUnsupported where the kernel has
// no netem queueing discipline.
func (h *Host) SetDelay(d time.Duration) error {
	if d == 0 {
		_, err := h.Run(context.Background(), "tc", "qdisc", "del", "dev", "eth0", "root")
		if err != nil && strings.Contains(err.Error(), "No such file") {
			return nil
		}
		return err
	}
	_, err := h.Run(context.Background(), "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
		"delay", strconv.FormatInt(d.Microseconds(), 10)+"us")
	if err != nil && strings.Contains(err.Error(), "qdisc kind is unknown") {
		return fmt.Errorf("%w: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): %v", ErrUnsupported, err)
	}
	return err
}

// DelaySupported returns nil if SetDelay can work on this machine, or an
// error wrapping ErrUnsupported that says why not. It probes with a
// throwaway namespace.
func DelaySupported() error {
	if err := Supported(); err != nil {
		return err
	}
	prefix, err := namePrefix()
	if err != nil {
		return err
	}
	name := prefix + base36(os.Getpid(), 5) + "zz-probe"
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	defer ip("netns", "del", name)
	out, err := exec.Command("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").CombinedOutput()
	switch {
	case err == nil:
		return nil
	case strings.Contains(string(out), "qdisc kind is unknown"):
		return fmt.Errorf("%w: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)", ErrUnsupported)
	default:
		return fmt.Errorf("%w: tc netem: %s", ErrUnsupported, strings.TrimSpace(string(out)))
	}
}

// Reachable reports whether a TCP connection from the host to addr
// (host:port) opens within timeout. It runs bash's /dev/tcp in the host, so
// it needs no client program there.
func (h *Host) Reachable(ctx context.Context, addr string, timeout time.Duration) error {
	hostPort, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	_, err = h.Run(ctx, "timeout", secs, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", hostPort, port))
	if err != nil {
		return fmt.Errorf("%s cannot reach %s: %w", h.Label, addr, err)
	}
	return nil
}
