package main

import (
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
// saves a CPU profile of the login storm, the STARTTLS storm and bulk, and a heap profile with
// the largest idle population held. The top of each goes into the report.
func profileUsher(e *env, p params, dir string, w io.Writer) error {
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
		name string
		load func(t target, stop <-chan struct{})
	}
	jobs := []job{
		{"cpu-login-storm", func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				storm(t, p.StormClients, time.Second, p.StormMax, 1, p.Users, false)
			}
		}},
		{"cpu-login-storm-starttls", func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				storm(t, p.TLSClients, time.Second, p.TLSMax, 1, p.Users, true)
			}
		}},
		{"cpu-bulk", func(t target, stop <-chan struct{}) {
			for !closed(stop) {
				if _, err := bulk(t, p.BulkStreams, 1); err != nil {
					return
				}
			}
		}},
	}
	fmt.Fprintf(w, "\n## Profiles of usher (pprof files in %s)\n", dir)
	for _, j := range jobs {
		in, err := startUsher(&pe)
		if err != nil {
			return err
		}
		t := target{addr: in.addr, srcIPs: clientIPs, timeout: 30 * time.Second}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { j.load(t, stop); close(done) }()
		// what the goroutines wait on, midway: off-CPU time does not show in a CPU profile
		goDone := make(chan struct{})
		go func() {
			defer close(goDone)
			time.Sleep(time.Duration(secs) * time.Second / 2)
			fetch(fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", pe.pprofAddr), filepath.Join(dir, "goroutines-"+j.name+".txt"))
		}()
		file := filepath.Join(dir, j.name+".pprof")
		err = fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pe.pprofAddr, secs), file)
		if err == nil { // what the load allocated, for -sample_index=alloc_space
			_ = fetch(fmt.Sprintf("http://%s/debug/pprof/allocs", pe.pprofAddr), filepath.Join(dir, "allocs-"+j.name+".pprof"))
		}
		close(stop)
		<-done
		<-goDone
		in.stop()
		if err != nil {
			return err
		}
		writeTop(w, j.name, bin, file)
	}

	in, err := startUsher(&pe)
	if err != nil {
		return err
	}
	n := p.IdleSizes[len(p.IdleSizes)-1] // already clamped to what the descriptor limit allows
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
