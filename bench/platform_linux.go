package main

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// errLoads is nil: the loads run here (platform_other.go says why only here).
var errLoads error

// raiseFileLimit lifts RLIMIT_NOFILE to the kernel's nr_open when allowed (root with
// CAP_SYS_RESOURCE), for the harness and, inherited, for the contenders: 50,000 sessions are
// 100,000+ descriptors. It returns the soft limit in force afterwards.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	want := lim.Max
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil && os.Geteuid() == 0 {
		var n uint64
		if _, err := fmt.Sscan(string(b), &n); err == nil && n > want {
			want = n
		}
	}
	next := syscall.Rlimit{Cur: want, Max: want}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		log.Warn("cannot raise the open files limit beyond the hard limit", "hard", lim.Max, "want", want, "err", err)
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		return lim.Max
	}
	return want
}
