package main

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// result is one contender under one load.
type result struct {
	Load, Contender string
	Skip            string // contender not run here, and why
	Err             string // the load did not complete

	Storm *stormResult
	Idle  *idleResult
	Bulk  *bulkStat
}

type idleResult struct {
	Want, Held       int
	BaseKiB, PeakKiB int64
	Procs            int
}

func (r idleResult) perSessionKiB() float64 {
	if r.Held == 0 {
		return 0
	}
	return float64(r.PeakKiB-r.BaseKiB) / float64(r.Held)
}

type bulkStat struct {
	bulkResult
	CPUSec float64 // the contender's, user+system, all its processes
}

func (b bulkStat) cpuPerGB() float64 {
	if b.Bytes == 0 {
		return 0
	}
	return b.CPUSec / (float64(b.Bytes) / 1e9)
}

// load is one measurement, run against a freshly started contender.
type load struct {
	name string
	real bool // in front of real Dovecot backends instead of the fake ones
	run  func(e *env, p params, c contender, in *instance, t target) result
	cpus cpuMode
}

// cpuMode says where a load runs when the run pins (-pin); without -pin everything shares
// every CPU.
type cpuMode int

const (
	cpuAsRun      cpuMode = iota
	cpuWhole              // every CPU for everyone even when pinning (see bulk below)
	cpuPinnedOnly         // only in a pinned run: the pinned variant of a cpuWhole load
)

func loads(p params) []load {
	ls := []load{
		{"login storm", false, func(e *env, p params, c contender, in *instance, t target) result {
			warm(t, p)
			return timedStorm(in, func() stormResult { return storm(t, p.StormClients, p.StormTime, p.StormMax, 1, p.Users, false) })
		}, cpuAsRun},
		{"login storm, Dovecot backends", true, func(e *env, p params, c contender, in *instance, t target) result {
			before := backendCPU(e)
			r := timedStorm(in, func() stormResult { return storm(t, p.StormClients, p.StormTime, p.StormMax, 1, p.Users, false) })
			r.Storm.BackendCPUSec = backendCPU(e) - before
			return r
		}, cpuAsRun},
		{"login latency (C=1)", false, func(e *env, p params, c contender, in *instance, t target) result {
			warm(t, p)
			return stormOutcome(storm(t, 1, p.LatencyTime, p.LatencyMax, 1, p.Users, false))
		}, cpuAsRun},
		// every login a user the director has not seen: its mapping is created, not read
		{"login latency (C=1, new users)", false, func(e *env, p params, c contender, in *instance, t target) result {
			return stormOutcome(storm(t, 1, p.LatencyTime, p.LatencyMax, p.Users+1, p.LatencyMax+1, false))
		}, cpuAsRun},
	}
	for _, n := range p.IdleSizes {
		ls = append(ls, load{fmt.Sprintf("idle %d", n), false, func(e *env, p params, c contender, in *instance, t target) result {
			return idle(p, in, t, n)
		}, cpuAsRun})
	}
	runBulk := func(e *env, p params, c contender, in *instance, t target) result {
		before := usage(in)
		b, err := bulk(t, p.BulkStreams, p.BulkRounds)
		r := result{Bulk: &bulkStat{bulkResult: b, CPUSec: usage(in).CPUSec - before.CPUSec}}
		if err != nil {
			r.Err = err.Error()
		}
		return r
	}
	ls = append(ls,
		// Pinned, bulk measures the load generator's one core, not the contender: direct is
		// capped there, and a proxy that copies (HAProxy) leaves the receiving client data
		// warm in cache that a splicing one (usher) does not, while usher's own core idles at
		// a third. So the goal's bulk figure is taken with every CPU shared, where what a
		// proxy costs per GB is what it takes from the rest; the pinned one is reported.
		load{"bulk FETCH", false, runBulk, cpuWhole},
		load{"bulk FETCH, pinned", false, runBulk, cpuPinnedOnly},
		load{"login storm STARTTLS", false, func(e *env, p params, c contender, in *instance, t target) result {
			warm(t, p)
			return timedStorm(in, func() stormResult { return storm(t, p.TLSClients, p.TLSTime, p.TLSMax, 1, p.Users, true) })
		}, cpuAsRun},
	)
	return ls
}

// warm logs every user in once, untimed, so a timed load measures a director that already
// knows its users (their mappings are sticky for director_user_expire), as in production.
func warm(t target, p params) {
	storm(t, p.StormClients, time.Minute, p.Users, 1, p.Users, false)
}

// timedStorm also records the contender's CPU time (all its processes) during the storm:
// CPU per login is the contender's own cost, whatever the load generator leaves it.
func timedStorm(in *instance, f func() stormResult) result {
	before := usage(in)
	s := f()
	s.CPUSec = usage(in).CPUSec - before.CPUSec
	return stormOutcome(s)
}

// backendCPU is the real backends' CPU time so far, every process of each summed.
func backendCPU(e *env) float64 {
	var s float64
	for _, pid := range e.backendPIDs {
		s += treeUsage(pid).CPUSec
	}
	return s
}

func stormOutcome(s stormResult) result {
	r := result{Storm: &s}
	if s.Cycles == 0 {
		r.Err = "no login completed: " + s.FirstErr
	}
	return r
}

func usage(in *instance) procUsage {
	if in.pid == 0 {
		return procUsage{}
	}
	return treeUsage(in.pid)
}

func idle(p params, in *instance, t target, n int) result {
	base := usage(in)
	held, err := idleSessions(t, n, p.IdlePar, p.Users, p.IdleTime)
	defer closeAll(held)
	time.Sleep(p.IdleSettle)
	peak := usage(in)
	r := result{Idle: &idleResult{Want: n, Held: len(held), BaseKiB: base.RSSKiB, PeakKiB: peak.RSSKiB, Procs: peak.Procs}}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// runAll runs every load against every contender, each on a fresh start.
func runAll(e *env, p params, cs []contender, only []string) []result {
	var out []result
	for _, l := range loads(p) {
		if !wanted(l.name, only) || (l.cpus == cpuPinnedOnly && e.cpus == nil) {
			continue
		}
		if l.cpus == cpuWhole && e.cpus != nil {
			out = append(out, unpinned(e, func(ue *env) []result { return runLoad(ue, p, l, cs) })...)
			continue
		}
		out = append(out, runLoad(e, p, l, cs)...)
	}
	return out
}

// unpinned runs f with the harness and the contenders it starts on every CPU, then pins the
// harness again.
func unpinned(e *env, f func(*env) []result) []result {
	if err := e.cpus.unpinSelf(); err != nil {
		e.log.Warn("unpinning the harness", "err", err)
	}
	defer func() {
		if err := e.cpus.pinSelf(); err != nil {
			e.log.Warn("pinning the harness again", "err", err)
		}
	}()
	ue := *e
	ue.cpus = nil
	return f(&ue)
}

// runLoad runs l against every contender, each started afresh.
func runLoad(e *env, p params, l load, cs []contender) []result {
	var out []result
	for _, c := range cs {
		out = append(out, runOne(e, p, l, c))
	}
	return out
}

// runOne runs l against a freshly started c, in front of backends of its own when l.real:
// a user's first login on a real Dovecot creates the mail store (maildir, index, INBOX),
// several times the work of a later one, so backends shared by the contenders in turn would
// give every contender after the first the users its predecessors had already created.
func runOne(e *env, p params, l load, c contender) result {
	le, done, err := envFor(e, p, l)
	if err != nil {
		e.log.Warn("backends failed", "load", l.name, "contender", c.name, "err", err)
		return failed(l.name, c.name, err)
	}
	defer done()
	e.log.Info("load", "load", l.name, "contender", c.name)
	in, err := c.start(le)
	if err != nil {
		e.log.Warn("start failed", "contender", c.name, "err", err)
		return failed(l.name, c.name, err)
	}
	t := target{addr: in.addr, srcIPs: clientIPs, timeout: 30 * time.Second}
	r := l.run(le, p, c, in, t)
	in.stop()
	r.Load, r.Contender = l.name, c.name
	if r.Err != "" {
		e.log.Warn("load incomplete", "load", l.name, "contender", c.name, "err", r.Err)
	}
	return r
}

func wanted(name string, only []string) bool {
	if len(only) == 0 {
		return true
	}
	for _, o := range only {
		if strings.HasPrefix(name, strings.TrimSpace(o)) {
			return true
		}
	}
	return false
}

// envFor is e, or for a load on real backends a copy pointing at freshly started ones.
func envFor(e *env, p params, l load) (*env, func(), error) {
	if !l.real {
		return e, func() {}, nil
	}
	d, err := startDoveBackends(e, p.Users)
	if err != nil {
		return nil, nil, err
	}
	le := *e
	le.backends, le.backendPort, le.backendPIDs = d.ips, d.port, d.pids
	return &le, d.Close, nil
}

func failed(load, contender string, err error) result {
	r := result{Load: load, Contender: contender, Err: err.Error()}
	var skip errSkip
	if errors.As(err, &skip) {
		r.Err, r.Skip = "", skip.why
	}
	return r
}
