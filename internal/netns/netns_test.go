package netns_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/internal/netns"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const webPort = 8000

// serve runs a small HTTP server on h (python3's http.server) and waits
// until the test process reaches it.
func serve(t *testing.T, h *netns.Host) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.Command(ctx, "python3", "-m", "http.server", "--bind", h.IP.String(), strconv.Itoa(webPort))
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("python3 http.server on %s: %v", h.Label, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 30*time.Second, func() error { return get(h) })
}

// get fetches / from h's web server from the test process.
func get(h *netns.Host) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + h.Addr(webPort) + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", h.Addr(webPort), resp.StatusCode)
	}
	return nil
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.CheckFor(t, timeout, 100*time.Millisecond, f)
}

// reach checks, from each host of from, whether it reaches to's web server.
func reach(t *testing.T, want bool, from *netns.Host, to ...*netns.Host) {
	t.Helper()
	for _, h := range to {
		err := from.Reachable(context.Background(), h.Addr(webPort), 700*time.Millisecond)
		if want && err != nil {
			t.Fatalf("want %s to reach %s: %v", from.Label, h.Label, err)
		}
		if !want && err == nil {
			t.Fatalf("%s reaches %s, want it cut off", from.Label, h.Label)
		}
	}
}

func TestHostsCutHealBlockLoss(t *testing.T) {
	nw := netns.New(t)
	a, b, c := nw.AddHost("a"), nw.AddHost("b"), nw.AddHost("c")
	if !nw.Subnet().Contains(a.IP) || !nw.Subnet().Contains(c.IP) || a.IP == b.IP || nw.Gateway() == a.IP {
		t.Fatalf("addresses: subnet %s gateway %s hosts %s %s %s", nw.Subnet(), nw.Gateway(), a.IP, b.IP, c.IP)
	}
	for _, h := range []*netns.Host{a, b, c} {
		serve(t, h)
	}
	reach(t, true, a, b, c)
	reach(t, true, b, a, c)
	reach(t, true, c, a, b)

	// Nothing leaves the machine: a host has no default route.
	if out, err := a.Run(context.Background(), "ip", "route", "get", "192.0.2.1"); err == nil {
		t.Fatalf("host a has a route out of its subnet: %s", out)
	}

	t.Run("cut and heal", func(t *testing.T) {
		if err := b.Cut(); err != nil {
			t.Fatal(err)
		}
		reach(t, false, a, b)
		reach(t, false, b, c)
		if get(b) == nil {
			t.Fatal("the test process still reaches the cut host")
		}
		reach(t, true, a, c)
		if err := b.Heal(); err != nil {
			t.Fatal(err)
		}
		// The link comes back at once, but a host that failed to resolve
		// b's address while it was cut retries on its own schedule: healed
		// means reachable again within seconds, as from the test process.
		eventually(t, 10*time.Second, func() error { return get(b) })
		eventually(t, 10*time.Second, func() error {
			return a.Reachable(context.Background(), b.Addr(webPort), 700*time.Millisecond)
		})
		eventually(t, 10*time.Second, func() error {
			return b.Reachable(context.Background(), c.Addr(webPort), 700*time.Millisecond)
		})
	})

	t.Run("block between two hosts", func(t *testing.T) {
		if err := a.Block(c); err != nil {
			if errors.Is(err, netns.ErrUnsupported) {
				requireNft(t, err)
			}
			t.Fatal(err)
		}
		reach(t, false, a, c)
		reach(t, false, c, a)
		reach(t, true, a, b)
		reach(t, true, b, c)
		if err := get(a); err != nil {
			t.Fatalf("the test process must still reach a blocked host: %v", err)
		}
		if err := a.Unblock(c); err != nil {
			t.Fatal(err)
		}
		reach(t, true, a, c)
		reach(t, true, c, a)
	})

	t.Run("loss", func(t *testing.T) {
		if err := c.SetLoss(100); err != nil {
			if errors.Is(err, netns.ErrUnsupported) {
				requireNft(t, err)
			}
			t.Fatal(err)
		}
		reach(t, false, a, c)
		reach(t, false, c, b)
		out, err := c.Run(context.Background(), "nft", "list", "ruleset")
		if err != nil || !strings.Contains(out, `oifname "eth0" drop`) {
			t.Fatalf("nft ruleset on c: %v\n%s", err, out)
		}
		if err := c.SetLoss(30); err != nil {
			t.Fatal(err)
		}
		out, _ = c.Run(context.Background(), "nft", "list", "ruleset")
		if strings.Count(out, "numgen random mod 100 < 30 drop") != 2 || strings.Contains(out, `"eth0" drop`) {
			t.Fatalf("after SetLoss(30) the ruleset is not one 30%% rule each way:\n%s", out)
		}
		if err := c.SetLoss(0); err != nil {
			t.Fatal(err)
		}
		reach(t, true, a, c)
		reach(t, true, c, b)
	})
}

func requireNft(t *testing.T, err error) {
	t.Helper()
	t.Fatalf("%v (deploy/dev/test-tools.sh installs it)", err)
}

func TestDelay(t *testing.T) {
	if err := netns.DelaySupported(); err != nil {
		// A kernel property, not an install step: skip, naming it, even
		// under make test.
		t.Skipf("SetDelay cannot work here: %v", err)
	}
	nw := netns.New(t)
	a, b := nw.AddHost("a"), nw.AddHost("b")
	serve(t, b)
	if err := a.SetDelay(150 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Reachable(context.Background(), b.Addr(webPort), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A TCP connect takes a full round trip, so at least the delay: a
	// lower bound the delay guarantees, not a timing assumption.
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("connect took %s with a 150ms delay", d)
	}
	if err := a.SetDelay(0); err != nil {
		t.Fatal(err)
	}
}

// TestLeftoversOfADeadProcessAreRemoved plays a crashed test run: a
// namespace with a process in it and a link, named for a process id that no
// longer exists. The next New removes them, and the process.
func TestLeftoversOfADeadProcessAreRemoved(t *testing.T) {
	if err := netns.Supported(); err != nil {
		t.Skip(err) // New reports it in the other tests
	}
	pid := deadPid(t)
	key := cmp.Or(os.Getenv("LF_NETNS_PREFIX"), "lfn") + pad36(pid, 5) + "00"
	ns, link := key+"-crashed", key+"v00"
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", link).Run()
	})
	for _, args := range [][]string{{"netns", "add", ns}, {"link", "add", link, "type", "veth", "peer", "name", key + "p00"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	t.Cleanup(func() { sleeper.Process.Kill(); <-waited })
	// ip enters the namespace after Start returns; a crashed run's process
	// was inside it, so wait until this one is too.
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %w", ns, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if f == strconv.Itoa(sleeper.Process.Pid) {
				return nil
			}
		}
		return fmt.Errorf("process %d not yet in %s (pids %q)", sleeper.Process.Pid, ns, out)
	})

	netns.New(t)

	if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s still there: %v", ns, err)
	}
	if _, err := os.Stat("/sys/class/net/" + link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link %s still there: %v", link, err)
	}
	select {
	case err := <-waited:
		waited <- err
		if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the process in the namespace ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process in the leftover namespace still runs")
	}
}

// TestNetworksDoNotCollide checks that two networks of one process get
// their own names and subnets.
func TestNetworksDoNotCollide(t *testing.T) {
	n1, n2 := netns.New(t), netns.New(t)
	if n1.Subnet() == n2.Subnet() || n1.Subnet().Overlaps(n2.Subnet()) {
		t.Fatalf("two networks share %s and %s", n1.Subnet(), n2.Subnet())
	}
	h1, h2 := n1.AddHost("x"), n2.AddHost("x")
	prefix := cmp.Or(os.Getenv("LF_NETNS_PREFIX"), "lfn")
	if h1.Name == h2.Name || !strings.HasPrefix(h1.Name, prefix) {
		t.Fatalf("namespace names %q and %q", h1.Name, h2.Name)
	}
	serve(t, h2)
	// Separate networks are not joined.
	if err := h1.Reachable(context.Background(), h2.Addr(webPort), 700*time.Millisecond); err == nil {
		t.Fatal("a host reaches a host of another network")
	}
}

// deadPid returns a process id that is not in use.
func deadPid(t *testing.T) int {
	for pid := 4_000_000; pid > 3_000_000; pid -= 7919 {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return pid
		}
	}
	t.Fatal("no free process id found")
	return 0
}

func pad36(v, width int) string {
	s := strconv.FormatInt(int64(v), 36)
	return strings.Repeat("0", max(0, width-len(s))) + s
}
