// Command usherprof is `usher serve -c FILE` plus net/http/pprof on the loopback address in
// USHER_BENCH_PPROF, so the benchmark harness can profile usher under load without usher
// itself carrying a profiling endpoint.
package main

import (
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/logsink"
	"github.com/usher-mail/usher/internal/server"
)

func main() {
	os.Exit(serve())
}

func serve() int {
	log, sink := logsink.NewLogger(os.Stderr, slog.LevelInfo) // as usher serve
	defer sink.Close()
	if len(os.Args) != 4 || os.Args[1] != "serve" || os.Args[2] != "-c" {
		fmt.Fprintln(os.Stderr, "usage: usherprof serve -c FILE")
		return 64
	}
	if addr := os.Getenv("USHER_BENCH_PPROF"); addr != "" {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			fmt.Fprintln(os.Stderr, "usherprof: USHER_BENCH_PPROF must be a loopback ip:port")
			return 64
		}
		// sampled, to see where logins wait without slowing them much: one blocking event per
		// 100 µs spent blocked, one contended lock in 100
		runtime.SetBlockProfileRate(100_000)
		runtime.SetMutexProfileFraction(100)
		go func() { log.Error("pprof", "err", http.ListenAndServe(addr, nil)) }()
	}
	path := os.Args[3]
	s, _, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usherprof:", err)
		return 78
	}
	srv, err := server.New(path, s, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "usherprof:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
	case <-srv.Done():
	}
	srv.Stop()
	srv.Wait()
	return 0
}
