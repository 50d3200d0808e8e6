package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// profileUsher reruns the loads against usher built with a pprof endpoint (bench/usherprof) and
// saves a CPU profile of the login storm (with fake and with real Dovecot backends), the
// STARTTLS storm and bulk, with what goroutines blocked and waited on locks for meanwhile, and
// a heap profile with the largest idle population held. The top of each goes into the report.
// only selects loads as -loads does.
func profileUsher(e *env, p params, dir string, only []string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin, err := goBuild(e.dir, "usherprof", "github.com/usher-mail/usher/bench/usherprof")
	if err != nil {
		return err
	}
	port, err := freePort(usherIP)
	if err != nil {
		return err
	}
	pe := *e
	pe.usherBin, pe.pprofAddr = bin, netip.AddrPortFrom(usherIP, uint16(port)).String()
	secs := max(1, int(p.StormTime/time.Second)-1)

	type job struct {
		name, load string // the profile's name, the load it profiles
		real       bool   // in front of real Dovecot backends, fresh for the job
		run        func(t target, stop <-chan struct{})
	}
	jobs := []job{
		{"cpu-login-storm", "login storm", false, func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				storm(t, p.StormClients, time.Second, p.StormMax, 1, p.Users, false)
			}
		}},
		// the load itself, once, as it outlasts the profile: mostly first logins, so new users
		// routed and recorded in the ring, and mail stores created behind
		{"cpu-login-storm-dovecot-backends", "login storm, Dovecot backends", true, func(t target, stop <-chan struct{}) {
			storm(t, p.StormClients, p.StormTime, p.StormMax, 1, p.Users, false)
			<-stop
		}},
		{"cpu-login-storm-starttls", "login storm STARTTLS", false, func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				storm(t, p.TLSClients, time.Second, p.TLSMax, 1, p.Users, true)
			}
		}},
		{"cpu-bulk", "bulk FETCH", false, func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				if _, err := bulk(t, p.BulkStreams, 1); err != nil {
					return
				}
			}
		}},
	}
	fmt.Fprintf(w, "\n## Profiles of usher (pprof files in %s)\n", dir)
	for _, j := range jobs {
		if !wanted(j.load, only) {
			continue
		}
		je, backendsDone, err := envFor(&pe, p, load{name: j.load, real: j.real})
		var skip errSkip
		if errors.As(err, &skip) { // no Dovecot here: the other profiles still count
			fmt.Fprintf(w, "\n### %s\n\nskipped: %s\n", j.name, skip.why)
			continue
		}
		if err != nil {
			return err
		}
		in, err := startUsher(je)
		if err != nil {
			backendsDone()
			return err
		}
		t := target{addr: in.addr, srcIPs: clientIPs, timeout: 30 * time.Second}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { j.run(t, stop); close(done) }()
		// what the goroutines wait on, midway: off-CPU time does not show in a CPU profile
		goDone := make(chan struct{})
		go func() {
			defer close(goDone)
			time.Sleep(time.Duration(secs) * time.Second / 2)
			fetch(fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", pe.pprofAddr), filepath.Join(dir, "goroutines-"+j.name+".txt"))
		}()
		file := filepath.Join(dir, j.name+".pprof")
		err = fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pe.pprofAddr, secs), file)
		if err == nil { // what the load allocated, and where goroutines blocked and waited on locks
			for _, kind := range []string{"allocs", "block", "mutex"} {
				_ = fetch(fmt.Sprintf("http://%s/debug/pprof/%s", pe.pprofAddr, kind), filepath.Join(dir, kind+"-"+j.name+".pprof"))
			}
		}
		close(stop)
		<-done
		<-goDone
		in.stop()
		backendsDone()
		if err != nil {
			return err
		}
		writeTop(w, j.name, bin, file)
	}
	n := p.IdleSizes[len(p.IdleSizes)-1] // already clamped to what the descriptor limit allows
	if !wanted(fmt.Sprintf("idle %d", n), only) {
		return nil
	}
	in, err := startUsher(&pe)
	if err != nil {
		return err
	}
	held, _ := idleSessions(target{addr: in.addr, srcIPs: clientIPs, timeout: 30 * time.Second}, n, p.IdlePar, p.Users, p.IdleTime)
	rss := treeUsage(in.pid).RSSKiB // before the forced collection below
	// debug=1 ends with runtime.MemStats: how much of the RSS is stacks, heap, runtime
	_ = fetch(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", pe.pprofAddr), filepath.Join(dir, "heap-idle.txt"))
	file := filepath.Join(dir, "heap-idle.pprof")
	err = fetch(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", pe.pprofAddr), file)
	if err == nil {
		err = fetch(fmt.Sprintf("http://%s/debug/pprof/goroutine", pe.pprofAddr), filepath.Join(dir, "goroutine-idle.pprof"))
	}
	fmt.Fprintf(w, "\nidle: %d sessions held, RSS %d KiB (runtime.MemStats in heap-idle.txt)\n", len(held), rss)
	closeAll(held)
	in.stop()
	if err != nil {
		return err
	}
	writeTop(w, "heap-idle (inuse_space)", bin, file, "-sample_index=inuse_space")
	return nil
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func fetch(url, file string) error {
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeTop(w io.Writer, name, bin, file string, extra ...string) {
	args := append([]string{"tool", "pprof", "-top", "-nodecount=25"}, extra...)
	out, err := exec.Command("go", append(args, bin, file)...).CombinedOutput()
	fmt.Fprintf(w, "\n### %s\n\n```\n%s", name, out)
	if err != nil {
		fmt.Fprintf(w, "(go tool pprof: %v)\n", err)
	}
	fmt.Fprintln(w, "```")
}
