// Command bench measures usher against the systems a site would use instead, on this machine
// in one run: Dovecot 2.3's director, HAProxy in TCP mode and a client talking to the backend
// directly. It sets everything up on loopback (127.77.0.0/16), runs bounded loads, tears it all
// down and prints a markdown table. See docs/benchmarks.md.
//
//	go run ./bench              # quick mode: seconds, small N
//	go run ./bench -mode full   # the documented run
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	params   params
	usherBin string   // prebuilt usher; empty: build ./cmd/usher
	only     []string // contender names; empty: all
	loads    []string // load names (or prefixes of them); empty: all
	profile  string   // directory for pprof profiles of usher; empty: none
	profOnly bool     // skip the measurements, only profile
	pin      bool     // contender on its own CPUs, load generator on the others
	log      *slog.Logger
}

func main() {
	mode := flag.String("mode", "quick", "quick (seconds, small N) or full (minutes, 10,000 and 50,000 idle sessions)")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	bin := flag.String("usher", "", "prebuilt usher binary (default: go build ./cmd/usher)")
	only := flag.String("only", "", "comma-separated contenders, run in this order (default: direct,usher,dovecot-director,haproxy-tcp)")
	prof := flag.String("profile", "", "after the run, profile usher under each load and write pprof files here")
	profOnly := flag.Bool("profile-only", false, "with -profile: skip the comparison, only profile usher")
	onlyLoads := flag.String("loads", "", "comma-separated loads to run, each a name or the start of one (\"login storm\", idle, bulk; a comma followed by a space belongs to the name, as in \"login storm, Dovecot backends\"); default: all")
	pin := flag.Bool("pin", false, "run each contender on half of the CPUs and the load generator and backends on the other half (bulk: also on every CPU, which the goal uses)")
	flag.Parse()
	o := options{usherBin: *bin, profile: *prof, profOnly: *profOnly, pin: *pin, log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	switch *mode {
	case "quick":
		o.params = quickParams()
	case "full":
		o.params = fullParams()
	default:
		fmt.Fprintln(os.Stderr, "bench: -mode must be quick or full")
		os.Exit(2)
	}
	if *only != "" {
		o.only = strings.Split(*only, ",")
	}
	if *onlyLoads != "" {
		o.loads = splitLoads(*onlyLoads)
	}
	var buf bytes.Buffer
	allMet, err := run(o, io.MultiWriter(os.Stdout, &buf))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if !allMet {
		fmt.Fprintln(os.Stderr, "bench: some goals were missed (see the table)")
	}
}

// run sets up, measures, tears down and writes the report; allMet reports the goals.
func run(o options, w io.Writer) (allMet bool, err error) {
	if errLoads != nil {
		return false, errLoads
	}
	fdLimit := raiseFileLimit(o.log)
	p := o.params
	var note string
	p.IdleSizes, note = clampIdle(p.IdleSizes, fdLimit)
	dir, err := os.MkdirTemp("", "usher-bench-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // Dovecot's unprivileged processes walk into it
	e := &env{log: o.log, dir: dir, fdLimit: fdLimit, procs: newProcSet()}
	if o.pin {
		if e.cpus, err = newCPUPlan(); err != nil {
			return false, err
		}
		if err := e.cpus.pinSelf(); err != nil {
			return false, err
		}
		defer e.cpus.unpinSelf()
	}
	defer e.procs.stopAll()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case sig := <-sigs:
			o.log.Warn("interrupted: tearing down", "signal", sig.String())
			e.procs.stopAll()
			os.RemoveAll(dir)
			os.Exit(130)
		case <-finished:
		}
	}()
	if e.cert, err = newBenchCert(dir); err != nil {
		return false, err
	}
	fb, port, err := startFakeBackends(o.log, backendIPs, benchPassword, e.cert.TLS, p.BulkMsgs, p.BulkMsgSize)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	e.backends, e.backendPort = backendIPs, port
	if e.usherBin = o.usherBin; e.usherBin == "" {
		if e.usherBin, err = goBuild(dir, "usher", "github.com/usher-mail/usher/cmd/usher"); err != nil {
			return false, err
		}
	}
	var cs []contender
	if !o.profOnly {
		cs = pickContenders(o.only)
	}
	start := time.Now()
	rs := runAll(e, p, cs, o.loads)
	fmt.Fprintf(w, "## Results (%s mode, %s, %s, load average at the end %s)\n\n", p.Mode, machine(), time.Since(start).Round(time.Second), loadAvg())
	if note != "" {
		fmt.Fprintf(w, "Note: %s\n\n", note)
	}
	writeTable(w, rs)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Goals")
	fmt.Fprintln(w)
	allMet = writeGoals(w, goals(rs, p.IdleSizes))
	if o.profile != "" {
		if err := profileUsher(e, p, o.profile, o.loads, w); err != nil {
			return allMet, fmt.Errorf("profile: %w", err)
		}
	}
	return allMet, nil
}

// clampIdle lowers idle sizes to what one process can hold under the descriptor limit: a proxy
// has two descriptors per session (and so does the harness: client plus fake backend).
func clampIdle(sizes []int, fdLimit uint64) ([]int, string) {
	most := int(fdLimit/2) - 256
	var out []int
	clamped := false
	for _, n := range sizes {
		if n > most {
			n, clamped = most, true
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if !clamped {
		return out, ""
	}
	return out, fmt.Sprintf("idle sizes %v asked for, but RLIMIT_NOFILE is %d here and cannot be raised "+
		"(no CAP_SYS_RESOURCE), so one process holds at most %d sessions (two descriptors each); measured %v",
		sizes, fdLimit, most, out)
}

func goBuild(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s", runtime.NumCPU(), cpu, runtime.Version())
}

// loadAvg says how busy the machine was: other work on it skews every figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// splitLoads splits -loads at commas, except a comma followed by a space, which is part of a
// load's name ("login storm, Dovecot backends").
func splitLoads(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if n := len(out); n > 0 && strings.HasPrefix(part, " ") {
			out[n-1] += "," + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// pickContenders returns the contenders named in only, in that order (every one when only is
// empty): contenders run one after the other, and the order can matter on a busy machine.
func pickContenders(only []string) []contender {
	all := contenders()
	if len(only) == 0 {
		return all
	}
	var cs []contender
	for _, name := range only {
		if i := slices.IndexFunc(all, func(c contender) bool { return c.name == name }); i >= 0 {
			cs = append(cs, all[i])
		}
	}
	return cs
}
