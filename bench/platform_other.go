//go:build !linux

package main

import (
	"errors"
	"log/slog"
)

// errLoads: the loads need Linux. The harness binds 127.77.0.0/16, which other systems do not
// answer on (only 127.0.0.1 is configured), reads the contenders' CPU time and memory from
// /proc, and pins with sched_setaffinity. The rest of the package builds so that the module
// does.
var errLoads = errors.New("the loads run on Linux only (127.77.0.0/16 on loopback, /proc for CPU and memory)")

func raiseFileLimit(*slog.Logger) uint64 { return 0 }
