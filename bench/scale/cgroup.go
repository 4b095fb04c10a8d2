package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuPeriodMicros is the CFS period of every worker's cgroup: its quota is
// this times the share. 100 ms is the kernel's default.
const cpuPeriodMicros = 100_000

// cgroup is a CPU cgroup that caps the processes in it at a share of one
// CPU (CFS bandwidth control): with a share of 0.5 they may run 50 ms of
// every 100 ms, whatever else the machine does, so N workers get N halves
// of a CPU even on 2 cores.
type cgroup struct {
	dir   string // the cgroup's directory
	procs string // the file a process writes its pid into to join
}

// cgroupRoot finds where CPU cgroups are made: the unified hierarchy
// (cgroup v2) when its cpu controller is enabled there, else the v1 cpu
// hierarchy.
func cgroupRoot() (root string, v2 bool, err error) {
	if ctl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && hasWord(string(ctl), "cpu") {
		return "/sys/fs/cgroup", true, nil
	}
	for _, dir := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(dir, "cpu.cfs_quota_us")); err == nil {
			return dir, false, nil
		}
	}
	return "", false, errors.New("no CPU cgroup controller: neither /sys/fs/cgroup/cgroup.controllers lists cpu (v2) nor /sys/fs/cgroup/cpu has cpu.cfs_quota_us (v1); run with -cpu 0 to measure without pinning")
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// newCgroup creates the cgroup name under root, capped at share CPUs (0:
// no cap) and weighted weight times a default process when CPUs are
// scarce. In v2 the controller must be enabled for the root's children
// (cgroup.subtree_control), which the harness does when it is not.
func newCgroup(root string, v2 bool, name string, share float64, weight int) (*cgroup, error) {
	dir := filepath.Join(root, name)
	if v2 {
		if err := enableCPU(root); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w (the harness must run as root to pin workers; -cpu 0 does without)", dir, err)
	}
	g := &cgroup{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}
	files := cpuFiles(v2, share, weight)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			g.remove()
			return nil, fmt.Errorf("cgroup %s: write %s: %w", dir, f[0], err)
		}
	}
	return g, nil
}

// cpuFiles are the files and values that cap a cgroup at share CPUs (none
// for 0) and weigh it weight times a default process (v1 cpu.shares 1024,
// v2 cpu.weight 100 each).
func cpuFiles(v2 bool, share float64, weight int) [][2]string {
	var files [][2]string
	quota := int64(share * cpuPeriodMicros)
	switch {
	case v2:
		files = append(files, [2]string{"cpu.weight", fmt.Sprint(min(100*weight, 10000))})
		if share > 0 {
			files = append(files, [2]string{"cpu.max", fmt.Sprintf("%d %d", quota, cpuPeriodMicros)})
		}
	default:
		files = append(files, [2]string{"cpu.shares", fmt.Sprint(1024 * weight)})
		if share > 0 {
			files = append(files, [2]string{"cpu.cfs_period_us", fmt.Sprint(cpuPeriodMicros)},
				[2]string{"cpu.cfs_quota_us", fmt.Sprint(quota)})
		}
	}
	return files
}

func enableCPU(root string) error {
	ctl := filepath.Join(root, "cgroup.subtree_control")
	cur, err := os.ReadFile(ctl)
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	if hasWord(string(cur), "cpu") {
		return nil
	}
	if err := os.WriteFile(ctl, []byte("+cpu"), 0o644); err != nil {
		return fmt.Errorf("cgroup v2: enable the cpu controller in %s: %w", ctl, err)
	}
	return nil
}

// wrap is the command line that puts the process it execs into the
// cgroup before exec, so that the cap applies from its first instruction.
func (g *cgroup) wrap() []string {
	return []string{"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, g.procs}
}

// join moves the calling process (all its threads) into the cgroup; the
// processes it starts afterwards are born there.
func (g *cgroup) join() error {
	if err := os.WriteFile(g.procs, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: join: %w", g.dir, err)
	}
	return nil
}

// leave moves the calling process back to root, so that the cgroup can be
// removed.
func leave(root string) error {
	if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: leave: %w", root, err)
	}
	return nil
}

// throttled returns the CFS periods the cgroup ran in and how many of them
// ended with its quota used up: the share of the time its processes wanted
// more CPU than the cap gave them.
func (g *cgroup) throttled() (periods, throttled int64, err error) {
	data, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("cgroup %s: %w", g.dir, err)
	}
	for line := range strings.Lines(string(data)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "nr_periods":
			periods = n
		case "nr_throttled":
			throttled = n
		}
	}
	return periods, throttled, nil
}

// remove deletes the cgroup; its processes must have exited.
func (g *cgroup) remove() error {
	if err := os.Remove(g.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup %s: %w", g.dir, err)
	}
	return nil
}
