// Package procstat reads the CPU time and memory of a process tree from
// /proc, for measuring a filter daemon from outside.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ticksPerSecond is USER_HZ: the kernel reports /proc/<pid>/stat times in
// these units, and it is 100 on every Linux ABI Go supports.
const ticksPerSecond = 100

// Proc is one process as /proc/<pid>/stat shows it.
type Proc struct {
	PID, PPID int
	// CPU is utime+stime+cutime+cstime: the process's own time plus that of
	// the children it has reaped. Summed over a tree this never decreases
	// while the tree's processes reap their own children, which is how a
	// pre-forking daemon's exited children stay counted.
	CPU time.Duration
}

// ParseStat parses the contents of /proc/<pid>/stat. The command name may
// contain spaces and parentheses, so fields are counted after the last ')'.
func ParseStat(b []byte) (Proc, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return Proc{}, fmt.Errorf("procstat: malformed stat line %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("procstat: pid in %q: %v", b, err)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[closing+1:]))
	if len(f) < 15 {
		return Proc{}, fmt.Errorf("procstat: short stat line %q", b)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Proc{}, fmt.Errorf("procstat: ppid in %q: %v", b, err)
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Proc{}, fmt.Errorf("procstat: times in %q: %v", b, err)
		}
		ticks += n
	}
	return Proc{PID: pid, PPID: ppid, CPU: time.Duration(ticks) * time.Second / ticksPerSecond}, nil
}

// Tree returns root and all its live descendants. Processes that exit while
// /proc is being read are left out.
func Tree(root int) ([]Proc, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	children := map[int][]Proc{}
	var top *Proc
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		p, err := ParseStat(b)
		if err != nil {
			return nil, err
		}
		if p.PID == root {
			top = &p
		}
		children[p.PPID] = append(children[p.PPID], p)
	}
	if top == nil {
		return nil, fmt.Errorf("procstat: process %d not found", root)
	}
	tree := []Proc{*top}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i].PID]...)
	}
	return tree, nil
}

// CPU returns the CPU time of root's tree: see Proc.CPU.
func CPU(root int) (time.Duration, error) {
	tree, err := Tree(root)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, p := range tree {
		sum += p.CPU
	}
	return sum, nil
}

// Memory is the memory of a process tree in bytes.
type Memory struct {
	RSS int64 // sum of VmRSS
	HWM int64 // sum of VmHWM, each process's own peak RSS
}

// Mem sums VmRSS and VmHWM from /proc/<pid>/status over root's tree.
func Mem(root int) (Memory, error) {
	tree, err := Tree(root)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, p := range tree {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		if err != nil {
			continue // exited meanwhile
		}
		rss, hwm, err := ParseStatus(b)
		if err != nil {
			return Memory{}, err
		}
		m.RSS += rss
		m.HWM += hwm
	}
	return m, nil
}

// ParseStatus returns VmRSS and VmHWM in bytes from /proc/<pid>/status.
// Kernel threads have neither and yield zeros.
func ParseStatus(b []byte) (rss, hwm int64, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("procstat: unexpected %s line %q", name, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("procstat: %s: %v", name, err)
		}
		if name == "VmRSS" {
			rss = n * 1024
		} else {
			hwm = n * 1024
		}
	}
	return rss, hwm, nil
}

// Sampler polls the memory of a tree and keeps the peak of the summed RSS,
// which for a pre-forking daemon is the memory its children hold at once.
type Sampler struct {
	stop chan struct{}
	done chan Memory
}

// Sample starts polling root's tree every interval until Stop.
func Sample(root int, interval time.Duration) *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan Memory, 1)}
	go func() {
		var peak Memory
		sample := func() {
			if m, err := Mem(root); err == nil {
				peak.RSS = max(peak.RSS, m.RSS)
				peak.HWM = max(peak.HWM, m.HWM)
			}
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-s.stop:
				sample() // the last moment counts too
				s.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the peaks seen: the largest summed
// RSS and the largest summed VmHWM.
func (s *Sampler) Stop() Memory {
	close(s.stop)
	return <-s.done
}
