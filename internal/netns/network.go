// Package netns gives tests several hosts on one machine: Linux network
// namespaces on a private IPv4 subnet, joined by a bridge in the root
// namespace, so that processes on different "hosts" talk over real network
// interfaces that a test can cut, heal, partition and make lossy. It is test
// support only; nothing outside tests imports it.
//
// A Network is a /24 under 10.213.0.0/16 that no route of the machine uses.
// The root namespace holds the bridge and the subnet's first address, so the
// test process reaches every host directly; a host gets the next address on
// its eth0, a veth whose other end is on the bridge. Hosts have no default
// route: nothing they send leaves the machine.
//
// Everything global is named "lfn" (or LF_NETNS_PREFIX: one to three
// lowercase letters) + the owning process id (5 base-36 digits) + a
// per-process counter (2 digits): concurrent test processes never collide,
// and New removes what a dead process of the same prefix left behind (its
// namespaces, the processes still running in them, its links). Cleanup
// removes everything at the end of the test, failed or not.
//
// Creating namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the
// `ip` command (iproute2); Block and SetLoss need `nft` (nftables), SetDelay
// the kernel's netem queueing discipline. Where one is missing the test is
// skipped with a message naming it, or fails under make test and CI (see
// internal/testenv).
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// ErrUnsupported is wrapped by the errors of features the kernel or the
// machine lacks (a netem qdisc, the nft command).
var ErrUnsupported = errors.New("netns: not supported on this machine")

// Network is a private subnet with hosts on it. Its methods are safe for
// concurrent use.
type Network struct {
	t      testing.TB
	key    string       // prefix + pid + counter: prefix of every global name
	bridge string       // the bridge's interface name in the root namespace
	subnet netip.Prefix // a /24; .1 is the root namespace's address
	mu     sync.Mutex
	hosts  []*Host
}

// counter numbers the Networks of this process.
var counter atomic.Int32

// defaultPrefix starts every global name unless LF_NETNS_PREFIX says
// otherwise.
const defaultPrefix = "lfn"

var validPrefix = regexp.MustCompile(`^[a-z]{1,3}$`)

// namePrefix returns the prefix of every global name: LF_NETNS_PREFIX
// (one to three lowercase letters, so that interface names stay within
// the kernel's 15 characters) or "lfn". Test runs of different prefixes
// never touch each other's leftovers.
func namePrefix() (string, error) {
	p := os.Getenv("LF_NETNS_PREFIX")
	if p == "" {
		return defaultPrefix, nil
	}
	if !validPrefix.MatchString(p) {
		return "", fmt.Errorf("LF_NETNS_PREFIX=%q: want one to three lowercase letters", p)
	}
	return p, nil
}

// ownedName matches the names this package gives with prefix: prefix,
// owner pid (5 base-36 digits), counter (2).
func ownedName(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `([0-9a-z]{5})([0-9a-z]{2})`)
}

// New creates an empty network owned by t and removed when t ends. It first
// removes what dead test processes left behind. Without root, the ip
// command or namespace support it skips t (fails under make test).
func New(t testing.TB) *Network {
	t.Helper()
	if err := Supported(); err != nil {
		testenv.Missing(t, err.Error())
	}
	prefix, err := namePrefix()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	unlock, err := lock()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	defer unlock()
	removeLeftovers(t, prefix)
	n := counter.Add(1)
	if n >= 36*36 {
		t.Fatalf("netns: more than %d networks in one process", 36*36-1)
	}
	key := prefix + base36(os.Getpid(), 5) + base36(int(n), 2)
	subnet, err := freeSubnet()
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	nw := &Network{t: t, key: key, bridge: key + "br", subnet: subnet}
	t.Cleanup(nw.remove)
	gw := nw.addr(1)
	if err := ip("link", "add", nw.bridge, "type", "bridge"); err != nil {
		testenv.Missing(t, fmt.Sprintf("netns: cannot create a bridge (kernel without bridge support?): %v", err))
	}
	for _, args := range [][]string{
		{"addr", "add", netip.PrefixFrom(gw, 24).String(), "dev", nw.bridge},
		{"link", "set", nw.bridge, "up"},
	} {
		if err := ip(args...); err != nil {
			t.Fatalf("netns: %v", err)
		}
	}
	return nw
}

// Supported returns nil when this process can create network namespaces,
// or an error naming what is missing.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN): run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netns: the ip command is missing: install iproute2 (apt-get install iproute2)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("netns: the kernel has no network namespaces (/proc/self/ns/net: %v)", err)
	}
	return nil
}

// Gateway returns the root namespace's address on the network: where hosts
// reach the test process.
func (n *Network) Gateway() netip.Addr { return n.addr(1) }

// Subnet returns the network's /24.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

func (n *Network) addr(i int) netip.Addr {
	a := n.subnet.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

// AddHost creates a host: a namespace named after the network and label
// (lowercase letters, digits, '-'), with loopback up and eth0 on the
// network at the next free address.
func (n *Network) AddHost(label string) *Host {
	n.t.Helper()
	if !validLabel.MatchString(label) {
		n.t.Fatalf("netns: host label %q: want 1-20 lowercase letters, digits or '-'", label)
	}
	n.mu.Lock()
	i := len(n.hosts)
	if i >= 250 {
		n.mu.Unlock()
		n.t.Fatalf("netns: a network holds at most 250 hosts")
	}
	h := &Host{nw: n, Name: n.key + "-" + label, Label: label, IP: n.addr(i + 2),
		veth: n.key + "v" + base36(i, 2), peer: n.key + "p" + base36(i, 2)}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	for _, h2 := range n.hosts[:i] {
		if h2.Label == label {
			n.t.Fatalf("netns: host %q added twice", label)
		}
	}
	steps := [][]string{
		{"netns", "add", h.Name},
		{"link", "add", h.veth, "type", "veth", "peer", "name", h.peer},
		{"link", "set", h.peer, "netns", h.Name},
		{"link", "set", h.veth, "master", n.bridge},
		{"link", "set", h.veth, "up"},
		{"-n", h.Name, "link", "set", h.peer, "name", "eth0"},
		{"-n", h.Name, "addr", "add", netip.PrefixFrom(h.IP, 24).String(), "dev", "eth0"},
		{"-n", h.Name, "link", "set", "eth0", "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if err := ip(args...); err != nil {
			n.t.Fatalf("netns: host %s: %v", label, err)
		}
	}
	return h
}

var validLabel = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)

// Hosts returns the hosts in the order they were added.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.hosts...)
}

// remove deletes the network: the processes in its namespaces, the
// namespaces, the veths and the bridge. Errors are reported on t.
func (n *Network) remove() {
	for _, h := range n.Hosts() {
		// The veth first: deleting the namespace destroys it
		// asynchronously, and a later delete would race with that.
		if err := deleteLink(h.veth); err != nil {
			n.t.Errorf("netns: %v", err)
		}
		if err := deleteNamespace(h.Name); err != nil {
			n.t.Errorf("netns: %v", err)
		}
	}
	if err := deleteLink(n.bridge); err != nil {
		n.t.Errorf("netns: %v", err)
	}
}

// deleteLink deletes a link unless it is already gone.
func deleteLink(name string) error {
	if !linkExists(name) {
		return nil
	}
	err := ip("link", "del", name)
	if err != nil && (strings.Contains(err.Error(), "Cannot find device") || !linkExists(name)) {
		return nil
	}
	return err
}

// deleteNamespace kills the processes left in a namespace (SIGKILL, waiting
// up to 10 s for them to go) and deletes it.
func deleteNamespace(name string) error {
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := namespacePids(name)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in namespace %s did not exit after SIGKILL", pids, name)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ip("netns", "del", name)
}

// namespacePids returns the processes whose network namespace is name.
func namespacePids(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeLeftovers deletes the namespaces and links of dead owners.
func removeLeftovers(t testing.TB, prefix string) {
	t.Helper()
	owned := ownedName(prefix)
	dead := func(name string) bool {
		m := owned.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.ParseInt(m[1], 36, 64)
		if err != nil {
			return false
		}
		return syscall.Kill(int(pid), 0) == syscall.ESRCH
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if dead(e.Name()) {
			t.Logf("netns: removing namespace %s left by a dead test process", e.Name())
			if err := deleteNamespace(e.Name()); err != nil {
				t.Logf("netns: %v", err)
			}
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		if dead(l.Name()) {
			t.Logf("netns: removing link %s left by a dead test process", l.Name())
			if err := deleteLink(l.Name()); err != nil {
				t.Logf("netns: %v", err)
			}
		}
	}
}

// freeSubnet returns the first 10.213.N.0/24 that no address or route of
// the root namespace overlaps. The caller holds the lock until its bridge
// has the subnet's address, so that concurrent callers see it.
func freeSubnet() (netip.Prefix, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip route: %w", err)
	}
	var used []netip.Prefix
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for _, w := range f {
			if p, err := netip.ParsePrefix(w); err == nil {
				used = append(used, p)
			} else if a, err := netip.ParseAddr(w); err == nil && a.Is4() {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	for i := range 256 {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(i), 0}), 24)
		free := true
		for _, p := range used {
			if p.Bits() >= 8 && p.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 under 10.213.0.0/16")
}

// lock serialises subnet allocation among test processes.
func lock() (func(), error) {
	f, err := os.OpenFile("/run/lock/lambdaflow-netns.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		f, err = os.OpenFile(os.TempDir()+"/lambdaflow-netns.lock", os.O_CREATE|os.O_RDWR, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// ip runs the ip command; its error includes what ip printed.
func ip(args ...string) error {
	return run("ip", args...)
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// base36 formats v in base 36, zero-padded to width digits.
func base36(v, width int) string {
	s := strconv.FormatInt(int64(v), 36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}
