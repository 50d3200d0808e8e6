package doveadm

import (
	"os"
	"strconv"
	"time"
)

// directorServices are the services a Dovecot 2.3 director's master lists in `service
// status`, in its order. usher keeps the list so that monitoring written against a 2.3
// director finds every name it expects; most of them have no work to do in usher.
var directorServices = []string{"managesieve-login", "managesieve", "tcpwrap", "health-check",
	"stats", "replicator", "aggregator", "pop3", "pop3-login", "old-stats", "log", "lmtp", "ipc",
	"indexer-worker", "indexer", "imap", "imap-urlauth-worker", "imap-urlauth",
	"imap-urlauth-login", "imap-login", "imap-hibernate", "doveadm", "dns-client", "director",
	"dict", "dict-async", "config", "auth", "auth-worker", "anvil"}

// inProcess are the services whose work usher does inside its one process: these show one
// process (usher itself), the others none.
var inProcess = map[string]bool{"stats": true, "old-stats": true, "log": true, "ipc": true,
	"doveadm": true, "director": true, "config": true, "auth": true, "anvil": true,
	"imap-login": true}

// selectServices returns the requested services in the master's order; unknown names are
// returned separately (the master answers "Unknown service").
func selectServices(c *cmdCtx) (names, unknown []string) {
	want, ok := c.array("service")
	if !ok || len(want) == 0 {
		return directorServices, nil
	}
	known := map[string]bool{}
	for _, s := range directorServices {
		known[s] = true
	}
	for _, w := range want {
		if known[w] {
			names = append(names, w)
		} else {
			unknown = append(unknown, w)
		}
	}
	return names, unknown
}

func cmdServiceStatus(c *cmdCtx) (*table, int) {
	names, unknown := selectServices(c)
	if len(unknown) > 0 {
		c.log.Error("Unknown service: " + unknown[0])
		return nil, exNotFound
	}
	t := newTable("name", "process_count", "process_avail", "process_limit", "client_limit",
		"throttle_secs", "exit_failure_last", "exit_failures_in_sec", "last_drop_warning",
		"listen_pending", "listening", "doveadm_stop", "process_total")
	for _, n := range names {
		procs := "0"
		if inProcess[n] {
			procs = "1"
		}
		t.add(n, procs, procs, "1", "1000", "0", "0", "0", "0", "n", "y", "n", procs)
	}
	return t, exOK
}

func cmdProcessStatus(c *cmdCtx) (*table, int) {
	names, unknown := selectServices(c)
	if len(unknown) > 0 {
		c.log.Error("Unknown service: " + unknown[0])
		return nil, exNotFound
	}
	pid := strconv.Itoa(os.Getpid())
	now := strconv.FormatInt(time.Now().Unix(), 10)
	t := newTable("name", "pid", "available_count", "total_count", "idle_start",
		"last_status_update", "last_kill_sent")
	for _, n := range names {
		if inProcess[n] {
			t.add(n, pid, "1000", "1", "0", now, "0")
		}
	}
	return t, exOK
}

// cmdInstanceList lists the one usher instance this API belongs to: Dovecot lists the
// instances recorded in its state directory, usher answers for itself.
func cmdInstanceList(c *cmdCtx) (*table, int) {
	t := newTable("path", "name", "last used", "running")
	t.add(c.cfg.BaseDir, "usher", time.Now().Format("2006-01-02 15:04:05"), "yes")
	return t, exOK
}
