package api

import "flag"

// benchSessions is the who population. The real-usher benchmark needs two
// file descriptors per session in usher and in this process, so it is
// bounded by RLIMIT_NOFILE (see docs/benchmarks-api.md).
var benchSessions = 10000

func init() {
	flag.IntVar(&benchSessions, "sessions", benchSessions, "sessions for the who benchmarks")
}
