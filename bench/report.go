package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// primary is the one figure of a result that ratios compare; ok is false when there is none.
func primary(r result) (float64, bool) {
	switch {
	case r.Skip != "" || r.Err != "" && r.Storm == nil && r.Idle == nil && r.Bulk == nil:
		return 0, false
	case r.Storm != nil && strings.HasPrefix(r.Load, "login latency"):
		return ms(r.Storm.P50), r.Storm.Cycles > 0
	case r.Storm != nil:
		return r.Storm.perSecond(), r.Storm.Cycles > 0
	case r.Idle != nil:
		return r.Idle.perSessionKiB(), r.Idle.Held > 0 && r.Idle.PeakKiB > 0
	case r.Bulk != nil:
		return r.Bulk.mbPerSecond(), r.Bulk.Bytes > 0
	}
	return 0, false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func figure(r result) string {
	if r.Skip != "" {
		return "skipped: " + r.Skip
	}
	var s string
	switch {
	case r.Storm != nil && strings.HasPrefix(r.Load, "login latency"):
		s = fmt.Sprintf("p50 %.3f ms, p99 %.3f ms (%d logins)", ms(r.Storm.P50), ms(r.Storm.P99), r.Storm.Cycles)
	case r.Storm != nil:
		s = fmt.Sprintf("%.0f logins/s, p50 %.2f ms, p99 %.2f ms (%d cycles, %d errors)",
			r.Storm.perSecond(), ms(r.Storm.P50), ms(r.Storm.P99), r.Storm.Cycles, r.Storm.Errors)
		if r.Storm.CPUSec > 0 {
			s += fmt.Sprintf(", %.0f CPU µs/login", r.Storm.cpuPerLogin())
		}
		if r.Storm.BackendCPUSec > 0 {
			s += fmt.Sprintf(", backends %.0f CPU µs/login", r.Storm.backendCPUPerLogin())
		}
	case r.Idle != nil && r.Idle.PeakKiB == 0:
		s = fmt.Sprintf("n/a (no proxy process; %d sessions held)", r.Idle.Held)
	case r.Idle != nil:
		s = fmt.Sprintf("%.1f KiB/session (RSS %d -> %d KiB, %d sessions, %d processes)",
			r.Idle.perSessionKiB(), r.Idle.BaseKiB, r.Idle.PeakKiB, r.Idle.Held, r.Idle.Procs)
	case r.Bulk != nil && r.Bulk.CPUSec == 0:
		s = fmt.Sprintf("%.0f MB/s (%.1f MB)", r.Bulk.mbPerSecond(), float64(r.Bulk.Bytes)/1e6)
	case r.Bulk != nil:
		s = fmt.Sprintf("%.0f MB/s, %.2f CPU s/GB (%.1f MB)", r.Bulk.mbPerSecond(), r.Bulk.cpuPerGB(), float64(r.Bulk.Bytes)/1e6)
	}
	if r.Err != "" {
		s = strings.TrimSpace(s + " ERROR: " + oneLine(r.Err))
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	return tail(s, 300)
}

func find(rs []result, load, contender string) (result, bool) {
	for _, r := range rs {
		if r.Load == load && r.Contender == contender {
			return r, true
		}
	}
	return result{}, false
}

// writeTable prints one markdown row per load and contender; ratio is usher's figure divided by
// the row's (for latency: usher's p50 minus the row's, in ms).
func writeTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| load | contender | figure | usher vs this |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rs {
		ratio := ""
		if u, ok := find(rs, r.Load, "usher"); ok && r.Contender != "usher" {
			uv, uok := primary(u)
			v, ok := primary(r)
			switch {
			case !uok || !ok:
			case strings.HasPrefix(r.Load, "login latency"):
				ratio = fmt.Sprintf("%+.3f ms", uv-v)
			case v > 0:
				ratio = fmt.Sprintf("%.2f", uv/v)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Load, r.Contender, figure(r), ratio)
	}
}

// goal is one target of the issue, evaluated from a single run.
type goal struct {
	Name   string
	Value  float64
	Unit   string
	Want   string
	Met    bool
	Absent string // why it could not be computed
}

func goals(rs []result, idleSizes []int) []goal {
	ratio := func(load, other string) (float64, string) {
		u, uok := find(rs, load, "usher")
		o, ook := find(rs, load, other)
		if !uok || !ook {
			return 0, "not run"
		}
		uv, ok1 := primary(u)
		ov, ok2 := primary(o)
		if !ok1 || !ok2 || ov == 0 {
			return 0, "no figure (see table)"
		}
		return uv / ov, ""
	}
	var gs []goal
	v, why := ratio("login storm", "dovecot-director")
	gs = append(gs, goal{"logins/s usher / Dovecot director", v, "", ">= 2.0", why == "" && v >= 2.0, why})
	v, why = ratio("login storm, Dovecot backends", "dovecot-director")
	gs = append(gs, goal{"same, in front of real Dovecot backends (reported)", v, "", "-", why == "", why})
	v, why = ratio("login storm STARTTLS", "dovecot-director")
	gs = append(gs, goal{"STARTTLS logins/s usher / Dovecot director (reported)", v, "", "-", why == "", why})
	for _, n := range idleSizes {
		l := fmt.Sprintf("idle %d", n)
		v, why = ratio(l, "dovecot-director")
		gs = append(gs, goal{"idle RSS/session usher / Dovecot, " + l, v, "", "<= 0.5", why == "" && v <= 0.5, why})
		abs, why2 := math.NaN(), "not run"
		if u, ok := find(rs, l, "usher"); ok {
			if x, ok := primary(u); ok {
				abs, why2 = x, ""
			}
		}
		gs = append(gs, goal{"idle RSS/session usher, " + l, abs, "KiB", "<= 16", why2 == "" && abs <= 16, why2})
	}
	v, why = ratio("bulk FETCH", "haproxy-tcp")
	gs = append(gs, goal{"bulk MB/s usher / HAProxy", v, "", ">= 0.95", why == "" && v >= 0.95, why})
	if _, ok := find(rs, "bulk FETCH, pinned", "usher"); ok {
		v, why = ratio("bulk FETCH, pinned", "haproxy-tcp")
		gs = append(gs, goal{"same, pinned (reported)", v, "", "-", why == "", why})
	}
	added, why := math.NaN(), "not run"
	u, uok := find(rs, "login latency (C=1)", "usher")
	d, dok := find(rs, "login latency (C=1)", "direct")
	if uok && dok {
		uv, ok1 := primary(u)
		dv, ok2 := primary(d)
		if ok1 && ok2 {
			added, why = uv-dv, ""
		}
	}
	gs = append(gs, goal{"p50 login latency added by usher over direct", added, "ms", "<= 0.5", why == "" && added <= 0.5, why})
	return gs
}

func writeGoals(w io.Writer, gs []goal) (allMet bool) {
	allMet = true
	fmt.Fprintln(w, "| goal | value | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, g := range gs {
		val, met := fmt.Sprintf("%.3f %s", g.Value, g.Unit), "no"
		if g.Absent != "" {
			val = g.Absent
		}
		if g.Met {
			met = "yes"
		}
		if g.Want == "-" {
			met = "-"
		} else if !g.Met {
			allMet = false
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.Name, strings.TrimSpace(val), g.Want, met)
	}
	return allMet
}
