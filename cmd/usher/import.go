package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	adminproto "github.com/usher-mail/usher/internal/admin"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/dirimport"
	"github.com/usher-mail/usher/internal/server"
)

const importUsage = `usage: usher import -a SOCKET|HOST:PORT [-to SOCKET|HOST:PORT | -offline] [-c FILE] [-user-expire DURATION]

Reads a running Dovecot 2.3 director over its director-admin socket (-a, as
"doveadm director -a") and writes its backends (vhost counts, tags, up/down)
and every user mapping, with its last-use time, into a running usher through
usher's director-admin socket (-to; default: director-admin in base_dir of
the config file), or with -offline into the state_dir of the stopped usher
the config file describes (a single director; a ring takes it running).
Running it again changes nothing. See docs/migrating-from-dovecot.md.

`

func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage); fs.PrintDefaults() }
	src := fs.String("a", "", "the Dovecot director's director-admin socket: a path or host:port")
	dst := fs.String("to", "", "usher's director-admin socket: a path or host:port")
	conf := fs.String("c", defaultConfig, "usher's config file (for -to and -user-expire defaults)")
	expire := fs.Duration("user-expire", 0, "the Dovecot director's director_user_expire (default: usher's, from -c)")
	offline := fs.Bool("offline", false, "write into the stopped usher's state_dir (from -c) instead of a running usher")
	timeout := fs.Duration("timeout", 30*time.Second, "per-command timeout")
	if err := fs.Parse(args); err != nil {
		return exUsage
	}
	if *src == "" || fs.NArg() > 0 || (*offline && *dst != "") {
		fs.Usage()
		return exUsage
	}
	var settings *config.Settings
	if *dst == "" || *expire == 0 {
		s, _, err := config.Load(*conf)
		if err != nil {
			fmt.Fprintf(stderr, "usher import: %v\n(give -to and -user-expire, or -c with usher's config)\n", err)
			return exConfig
		}
		settings = s
		if *dst == "" {
			*dst = filepath.Join(s.BaseDir, "director-admin")
		}
		if *expire == 0 {
			*expire = s.DirectorUserExpire
		}
	}
	if *expire < time.Second {
		fmt.Fprintf(stderr, "usher import: -user-expire %v is too short\n", *expire)
		return exUsage
	}
	from, err := dirimport.Dial(*src, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "usher import: Dovecot director: %v\n", err)
		return exTempFail
	}
	defer from.Close()
	var to *dirimport.Client
	if *offline {
		srv, err := server.OpenOffline(settings, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			fmt.Fprintf(stderr, "usher import: %s: %v\n", settings.StateDir, err)
			return exTempFail
		}
		defer func() { srv.Stop(); srv.Wait() }()
		to, err = adminproto.NewClient(srv.AdminPipe(), *timeout)
		if err != nil {
			fmt.Fprintf(stderr, "usher import: %v\n", err)
			return exTempFail
		}
	} else {
		to, err = dirimport.Dial(*dst, *timeout)
		if err != nil {
			fmt.Fprintf(stderr, "usher import: usher: %v\n", err)
			return exTempFail
		}
	}
	defer to.Close()
	rep, err := dirimport.Import(from, to, *expire, time.Now())
	fmt.Fprint(stdout, rep.String())
	for _, p := range rep.Problems {
		fmt.Fprintln(stderr, "usher import:", p)
	}
	if err != nil {
		fmt.Fprintf(stderr, "usher import: %v\n", err)
		return exTempFail
	}
	if rep.HostsFailed+rep.UsersFailed > 0 {
		return 1
	}
	return 0
}
