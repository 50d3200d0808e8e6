package doveadm

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/tabescape"
)

// withDirector runs fn over a fresh director-admin connection.
func (c *cmdCtx) withDirector(fn func(a *adminConn) (*table, int)) (*table, int) {
	a, err := c.dialDirector()
	if err != nil {
		return nil, exitOf(err)
	}
	defer a.close()
	return fn(a)
}

func cmdDirectorStatus(c *cmdCtx) (*table, int) {
	user, hasUser := c.str("user")
	tag, _ := c.str("tag")
	return c.withDirector(func(a *adminConn) (*table, int) {
		if hasUser {
			// The user goes out unescaped, as 2.3 sends it, so one that
			// would end the field or the line is refused: it could add a
			// command (HOST-SET) to a read-only request.
			if strings.ContainsAny(user, adminSeparators) {
				c.log.Error("director status: user name with a control character refused")
				return nil, exUsage
			}
			if err := a.sendRaw("USER-LOOKUP\t" + user + "\t" + tabescape.Escape(tag)); err != nil {
				return nil, exitOf(err)
			}
			line, err := a.readLine()
			if err != nil {
				return nil, exitOf(err)
			}
			f := strings.Split(line, "\t")
			if len(f) != 4 {
				c.log.Error("Invalid reply from director", "line", line)
				return nil, exProtocol
			}
			exp, ok := parseUnixTS(f[1])
			if !ok {
				c.log.Error("Invalid reply from director", "line", line)
				return nil, exProtocol
			}
			t := newTable("status", "expires", "hashed", "initial-config")
			status, expires := f[0], "-1"
			if status == "" {
				status = "n/a"
			} else {
				expires = unixdate2str(exp)
			}
			t.add(status, expires, f[2], f[3])
			return t, exOK
		}
		lines, err := a.listOf("HOST-LIST")
		if err != nil {
			return nil, exitOf(err)
		}
		t := newTable("mail server ip", "tag", "vhosts", "state", "state-changed", "users")
		for _, l := range lines {
			f := strings.Split(l, "\t")
			if len(f) < 6 {
				continue
			}
			state := "up"
			if strings.HasPrefix(f[4], "D") {
				state = "down"
			}
			changed := "-"
			if ts, ok := parseUnixTS(f[5]); ok && ts > 0 {
				changed = unixdate2str(ts)
			}
			t.add(f[0], tabescape.Unescape(f[3]), f[1], state, changed, f[2])
		}
		return t, exOK
	})
}

func cmdDirectorMap(c *cmdCtx) (*table, int) {
	host, hasHost := c.str("host")
	if (c.boolean("hash-map") || c.boolean("user-map")) && !hasHost {
		return nil, exUsage
	}
	if c.boolean("user-map") {
		h, err := c.svc.UserHash(host)
		if err != nil {
			return nil, exTempFail
		}
		t := newTable("hash")
		t.add(strconv.FormatUint(uint64(h), 10))
		return t, exOK
	}
	byHash, code := usersByHash(c)
	if code != exOK {
		return nil, code
	}
	if c.boolean("hash-map") {
		want, err := strconv.ParseUint(host, 10, 32)
		if err != nil {
			return nil, exUsage
		}
		t := newTable("user")
		for _, u := range byHash[uint32(want)] {
			t.add(u)
		}
		return t, exOK
	}
	var ips []netip.Addr
	if hasHost {
		var code int
		if ips, code = c.resolve(host); code != exOK {
			return nil, code
		}
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		cmd := "USER-LIST"
		if len(ips) == 1 {
			cmd += "\t" + ips[0].String()
		}
		if err := a.sendRaw(cmd); err != nil {
			return nil, exitOf(err)
		}
		lines, err := a.readList()
		if err != nil {
			return nil, exitOf(err)
		}
		code := exOK
		t := newTable("user", "hash", "mail server ip", "expire time")
		for _, l := range lines {
			row, ok := parseUserListRow(l)
			if !ok {
				c.log.Error("Invalid USER-LIST reply", "line", l)
				code = exProtocol
				continue
			}
			if len(ips) > 0 && !containsAddr(ips, row.ip.Unmap()) {
				continue
			}
			names := byHash[row.hash]
			if len(names) == 0 {
				names = []string{"<unknown>"}
			}
			for _, u := range names {
				t.add(u, row.hashText, row.ipText, unixdate2str(row.expire))
			}
		}
		return t, code
	})
}

// usersByHash indexes the userdb's users by director hash for `director
// map`. Over HTTP the users-file parameter arrives as a stream, which 2.3's
// `director map` cannot use as a file name: the user list is then empty and
// every mapping shows as <unknown> (as the golden recording shows). Without
// it the userdb is iterated.
func usersByHash(c *cmdCtx) (map[uint32][]string, int) {
	var users []string
	if !c.has("users-file") {
		var err error
		if users, err = c.svc.UserList(c.ctx); err != nil {
			c.log.Error("user listing failed", "err", err)
			return nil, exTempFail
		}
	}
	byHash := map[uint32][]string{}
	for _, u := range users {
		h, err := c.svc.UserHash(u)
		if err != nil {
			continue
		}
		// reverse insertion order, as 2.3's hash table of user lists yields them
		byHash[h] = append([]string{u}, byHash[h]...)
	}
	return byHash, exOK
}

// userListRow is one USER-LIST reply line: hash, expiry, backend. The
// texts are printed as the director sent them.
type userListRow struct {
	hash             uint32
	expire           int64
	ip               netip.Addr
	hashText, ipText string
}

func parseUserListRow(l string) (userListRow, bool) {
	f := strings.Split(l, "\t")
	if len(f) < 3 {
		return userListRow{}, false
	}
	h, err1 := strconv.ParseUint(f[0], 10, 32)
	exp, ok := parseUnixTS(f[1])
	ip, err3 := netip.ParseAddr(f[2])
	if err1 != nil || !ok || err3 != nil {
		return userListRow{}, false
	}
	return userListRow{hash: uint32(h), expire: exp, ip: ip, hashText: f[0], ipText: f[2]}, true
}

func containsAddr(list []netip.Addr, ip netip.Addr) bool {
	for _, a := range list {
		if a == ip {
			return true
		}
	}
	return false
}

func cmdDirectorAdd(c *cmdCtx) (*table, int)    { return directorSet(c, "HOST-SET") }
func cmdDirectorUpdate(c *cmdCtx) (*table, int) { return directorSet(c, "HOST-UPDATE") }

func directorSet(c *cmdCtx, verb string) (*table, int) {
	host, ok := c.str("host")
	if !ok {
		return nil, exUsage
	}
	vc, hasVC := c.str("vhost-count")
	if hasVC {
		if _, err := strconv.ParseUint(vc, 10, 32); err != nil {
			return nil, exUsage
		}
	} else if verb == "HOST-UPDATE" {
		return nil, exUsage
	}
	if isAllDigits(host) {
		c.log.Error("Invalid host", "host", host)
		return nil, exUsage
	}
	tag, hasTag := c.str("tag")
	if tag == "" {
		hasTag = false
	}
	if !hasTag {
		if h, t, found := strings.Cut(host, "@"); found {
			host, tag, hasTag = h, t, true
		}
	}
	ips, code := c.resolve(host)
	if code != exOK {
		return nil, code
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		return c.perHost(a, ips, func(ip netip.Addr) string {
			line := verb + "\t" + ip.String()
			if hasTag {
				line += "@" + tag
			}
			line = tabEscapeFieldsAfterVerb(line)
			if hasVC {
				line += "\t" + vc
			}
			return line
		}, slog.LevelError, exTempFail)
	})
}

// tabEscapeFieldsAfterVerb escapes the argument part of a "VERB\targ" line.
func tabEscapeFieldsAfterVerb(line string) string {
	verb, arg, _ := strings.Cut(line, "\t")
	return verb + "\t" + tabescape.Escape(arg)
}

func cmdDirectorUp(c *cmdCtx) (*table, int)     { return directorHostCmd(c, "HOST-UP") }
func cmdDirectorDown(c *cmdCtx) (*table, int)   { return directorHostCmd(c, "HOST-DOWN") }
func cmdDirectorRemove(c *cmdCtx) (*table, int) { return directorHostCmd(c, "HOST-REMOVE") }

func directorHostCmd(c *cmdCtx, verb string) (*table, int) {
	ips, code := c.hostParam()
	if code != exOK {
		return nil, code
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		return c.perHost(a, ips, func(ip netip.Addr) string { return verb + "\t" + ip.String() }, slog.LevelError, exNotFound)
	})
}

func cmdDirectorMove(c *cmdCtx) (*table, int) {
	user, okU := c.str("user")
	host, okH := c.str("host")
	if !okU || !okH {
		return nil, exUsage
	}
	h, err := c.svc.UserHash(user)
	if err != nil {
		return nil, exTempFail
	}
	ips, code := c.resolve(host)
	if code != exOK {
		return nil, code
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		l, err := a.ask("USER-MOVE\t" + strconv.FormatUint(uint64(h), 10) + "\t" + ips[0].String())
		if err != nil {
			return nil, exitOf(err)
		}
		switch l {
		case "OK":
			return nil, exOK
		case "NOTFOUND":
			c.log.Error("Host '" + ips[0].String() + "' doesn't exist")
			return nil, exNotFound
		case "TRYAGAIN":
			c.log.Error("User is already being moved, wait a while for it to be finished")
		default:
			c.log.Error("failed to move user: " + l)
		}
		return nil, exTempFail
	})
}

func cmdDirectorKick(c *cmdCtx) (*table, int) {
	user, ok := c.str("user")
	if !ok {
		return nil, exUsage
	}
	field, hasField := c.str("passdb-field")
	return c.withDirector(func(a *adminConn) (*table, int) {
		line := commandLine("USER-KICK", user)
		if hasField {
			line = commandLine("USER-KICK-ALT", field, user)
		}
		return c.askOK(a, line, "failed to kick user: ")
	})
}

func cmdDirectorFlush(c *cmdCtx) (*table, int) {
	host, ok := c.str("host")
	if !ok {
		return nil, exUsage
	}
	force := c.boolean("force-flush")
	maxPar := c.integer("max-parallel")
	if host == "all" {
		return c.withDirector(func(a *adminConn) (*table, int) {
			line := "HOST-RESET-USERS"
			switch {
			case force:
				line = "HOST-FLUSH"
			case maxPar > 0:
				line += "\t\t" + strconv.FormatInt(maxPar, 10)
			}
			return c.askOK(a, line, "flush failed: ")
		})
	}
	ips, code := c.resolve(host)
	if code != exOK {
		return nil, code
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		return c.perHost(a, ips, func(ip netip.Addr) string {
			if force {
				return "HOST-FLUSH\t" + ip.String()
			}
			line := "HOST-RESET-USERS\t" + ip.String()
			if maxPar > 0 {
				line += "\t" + strconv.FormatInt(maxPar, 10)
			}
			return line
		}, slog.LevelWarn, exNotFound)
	})
}

func cmdDirectorDump(c *cmdCtx) (*table, int) {
	path, ok := c.str("socket-path")
	if !ok {
		path = c.cfg.adminPath()
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		hosts, err := a.listOf("HOST-LIST")
		if err != nil {
			return nil, exitOf(err)
		}
		removed, err := a.listOf("HOST-LIST-REMOVED")
		if err != nil {
			return nil, exitOf(err)
		}
		t := newTable("command", "socket-path", "host", "vhost_count")
		for _, l := range hosts {
			f := strings.Split(l, "\t")
			if len(f) < 4 {
				continue
			}
			h := f[0]
			if tag := tabescape.Unescape(f[3]); tag != "" {
				h += "@" + tag
			}
			t.add("add", path, h, f[1])
		}
		for _, l := range removed {
			t.add("remove", path, l, "")
		}
		return t, exOK
	})
}

func cmdDirectorRingAdd(c *cmdCtx) (*table, int)    { return directorRing(c, "DIRECTOR-ADD") }
func cmdDirectorRingRemove(c *cmdCtx) (*table, int) { return directorRing(c, "DIRECTOR-REMOVE") }

func directorRing(c *cmdCtx, verb string) (*table, int) {
	ipStr, ok := c.str("ip")
	if !ok {
		return nil, exUsage
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return nil, exUsage
	}
	line := verb + "\t" + ip.Unmap().String()
	if port, ok := c.str("port"); ok {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, exUsage
		}
		line += "\t" + strconv.FormatUint(n, 10)
	}
	return c.withDirector(func(a *adminConn) (*table, int) {
		l, err := a.ask(line)
		if err != nil {
			return nil, exitOf(err)
		}
		switch l {
		case "OK":
			return nil, exOK
		case "NOTFOUND":
			c.log.Error("Not found")
			return nil, exNotFound
		}
		c.log.Error("Failed: " + l)
		return nil, exTempFail
	})
}

func cmdDirectorRingStatus(c *cmdCtx) (*table, int) {
	return c.withDirector(func(a *adminConn) (*table, int) {
		lines, err := a.listOf("DIRECTOR-LIST")
		if err != nil {
			return nil, exitOf(err)
		}
		t := newTable("director ip", "port", "type", "last failed", "status", "ping ms",
			"input", "output", "buffered", "buffered peak", "last read", "last write")
		for _, l := range lines {
			f := strings.Split(l, "\t")
			row := make([]string, 12)
			for i := range row {
				if i >= len(f) {
					row[i] = "-"
					continue
				}
				row[i] = tabescape.Unescape(f[i])
				if i == 3 || i == 10 || i == 11 {
					if ts, ok := parseUnixTS(f[i]); ok {
						if ts == 0 {
							row[i] = "never"
						} else {
							row[i] = unixdate2str(ts)
						}
					}
				}
			}
			t.rows = append(t.rows, row)
		}
		return t, exOK
	})
}
