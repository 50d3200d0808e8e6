package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/logsink"
	"github.com/usher-mail/usher/internal/server"
)

// defaultConfig is where `usher serve` looks without -c.
const defaultConfig = "/etc/usher/usher.conf"

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", defaultConfig, "config file (Dovecot 2.3 syntax)")
	dev := fs.Bool("dev", false, "demo mode: two built-in IMAP backends on loopback, state in a temp dir")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return 64
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log, sink := logsink.NewLogger(stderr, level)
	defer sink.Close()

	var (
		settings *config.Settings
		path     string
		cleanup  = func() {}
	)
	if *dev {
		d, err := startDev(log)
		if err != nil {
			fmt.Fprintln(sink, "usher: dev mode:", err)
			return 1
		}
		settings, cleanup = d.settings, d.close
		defer cleanup()
	} else {
		path = *conf
		s, warns, err := config.Load(path)
		for _, w := range warns {
			log.Warn("config", "warning", w.String())
		}
		if err != nil {
			fmt.Fprintln(sink, "usher:", err)
			return 78 // EX_CONFIG
		}
		settings = s
	}

	srv, err := server.New(path, settings, log)
	if err != nil {
		fmt.Fprintln(sink, "usher:", err)
		return 1
	}
	if *dev {
		printDevBanner(sink, settings)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// systemd (Type=notify): ready once every listener is up; Reload and
	// Stop tell it about reloads and the shutdown, from a signal or the API.
	if err := server.Notify("READY=1"); err != nil {
		log.Warn("systemd notification", "err", err)
	}
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				srv.Reload()
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			srv.Stop()
			srv.Wait()
			return 0
		case <-srv.Done():
			srv.Wait()
			return 0
		}
	}
}
