package doveadm

import (
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/tabescape"
)

// usher's own commands: not in GET /doveadm/v1 (which stays 2.3.19's
// catalogue) and named so that no Dovecot client sends them. They speak the
// USHER- lines of the director-admin socket (internal/admin/usher.go).
func usherCommands() []*command {
	sock := paramSpec{"socket-path", typeStr}
	maxPar := paramSpec{"max-parallel", typeInt}
	return []*command{
		{cmdSpec: cmdSpec{name: "usher director health", params: []paramSpec{sock}}, hidden: true, run: cmdUsherHealth},
		{cmdSpec: cmdSpec{name: "usher director drain", params: []paramSpec{sock, maxPar, {"host", typeStr}}}, hidden: true, run: cmdUsherDrain},
		{cmdSpec: cmdSpec{name: "usher director rebalance", params: []paramSpec{sock, maxPar}}, hidden: true, run: cmdUsherRebalance},
		{cmdSpec: cmdSpec{name: "usher director jobs", params: []paramSpec{sock}}, hidden: true, run: cmdUsherJobs},
	}
}

func cmdUsherHealth(c *cmdCtx) (*table, int) {
	return c.withDirector(func(a *adminConn) (*table, int) {
		lines, err := a.listOf("USHER-HOST-HEALTH")
		if err != nil {
			return nil, exitOf(err)
		}
		t := newTable("mail server ip", "state", "cause", "checks", "admin-hold", "users", "state-changed")
		for _, l := range lines {
			f := strings.Split(l, "\t")
			if len(f) != 7 {
				return nil, exProtocol
			}
			changed := "-"
			if ts, ok := parseUnixTS(f[6]); ok && ts > 0 {
				changed = unixdate2str(ts)
			}
			t.add(f[0], f[1], f[2], f[3], map[string]string{"1": "yes", "0": "no"}[f[4]], f[5], changed)
		}
		return t, exOK
	})
}

var progressKeys = []string{"job", "host", "state", "users-left", "sessions-left", "in-flight",
	"peak-in-flight", "moved", "failed", "total", "max-parallel", "error"}

// progressRows turns progress lines into a table; a line that is not one is
// the director's error reply.
func progressRows(lines []string) (*table, int) {
	t := newTable(progressKeys...)
	for _, l := range lines {
		f := strings.Split(l, "\t")
		switch {
		case l == "NOTFOUND":
			return nil, exNotFound
		case len(f) != len(progressKeys):
			return nil, exTempFail
		}
		for i := range f {
			f[i] = tabescape.Unescape(f[i])
		}
		t.add(f...)
	}
	return t, exOK
}

func (c *cmdCtx) progressCommand(line string) (*table, int) {
	if n := c.integer("max-parallel"); n > 0 {
		line += "\t" + strconv.FormatInt(n, 10)
	} else if n < 0 {
		return nil, exUsage
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		l, err := a.ask(line)
		if err != nil {
			return nil, exitOf(err)
		}
		return progressRows([]string{l})
	})
}

func cmdUsherDrain(c *cmdCtx) (*table, int) {
	ips, code := c.hostParam()
	if code != exOK {
		return nil, code
	}
	if len(ips) != 1 {
		return nil, exUsage
	}
	return c.progressCommand("USHER-HOST-DRAIN\t" + ips[0].String())
}

func cmdUsherRebalance(c *cmdCtx) (*table, int) { return c.progressCommand("USHER-REBALANCE") }

func cmdUsherJobs(c *cmdCtx) (*table, int) {
	return c.withDirector(func(a *adminConn) (*table, int) {
		lines, err := a.listOf("USHER-JOBS")
		if err != nil {
			return nil, exitOf(err)
		}
		return progressRows(lines)
	})
}
