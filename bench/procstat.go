package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ; Linux has used 100 on every architecture Go supports for years.
const clockTicks = 100

// procUsage is a process tree's resident memory and CPU time.
type procUsage struct {
	RSSKiB int64
	CPUSec float64
	Procs  int
}

// treeUsage sums root and all its live descendants. CPU also counts children already reaped
// by their parents (cutime/cstime), so short-lived Dovecot helpers are not lost.
func treeUsage(root int) procUsage {
	children := map[int][]int{}
	stats := map[int][]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if f == nil {
			continue
		}
		stats[pid] = f
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var u procUsage
	var walk func(int)
	walk = func(pid int) {
		f, ok := stats[pid]
		if !ok {
			return
		}
		u.Procs++
		u.RSSKiB += vmRSS(pid)
		// fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseFloat(f[i], 64)
			u.CPUSec += v / clockTicks
		}
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(root)
	return u
}

// statFields returns /proc/pid/stat after the parenthesised command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil
	}
	return f
}

func vmRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
