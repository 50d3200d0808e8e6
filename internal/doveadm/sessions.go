package doveadm

import (
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// mask is the who/kick filter: at most one username wildcard and one network (reference 3.4).
type mask struct {
	user   string
	hasNet bool
	net    netip.Prefix
}

// parseNet parses ip or ip/bits; a bare IP is a full-length mask.
func parseNet(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), true
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), true
}

func parseMask(args []string) (mask, bool) {
	var m mask
	hasUser := false
	for _, a := range args {
		if !isAllDigits(a) {
			if p, ok := parseNet(a); ok {
				if m.hasNet {
					return m, false // "Multiple network masks not supported"
				}
				m.net, m.hasNet = p, true
				continue
			}
		}
		if hasUser {
			return m, false
		}
		m.user, hasUser = a, true
	}
	return m, true
}

func (m *mask) userMatch(user string) bool {
	return m.user == "" || wildcardMatchFold(m.user, user)
}

func (m *mask) ipMatch(ip string) bool {
	if !m.hasNet {
		return true
	}
	a, err := netip.ParseAddr(ip)
	return err == nil && m.net.Contains(a.Unmap())
}

// wildcardMatchFold matches '*' and '?' wildcards, ASCII case-insensitively.
func wildcardMatchFold(pattern, s string) bool {
	p, str := strings.ToLower(pattern), strings.ToLower(s)
	var pi, si, star, mark = 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func cmdWho(c *cmdCtx) (*table, int) {
	if !c.localSocketOK("anvil") {
		return nil, exTempFail
	}
	args, _ := c.array("mask")
	m, ok := parseMask(args)
	if !ok {
		return nil, exUsage
	}
	conns := c.svc.Sessions()
	if c.boolean("separate-connections") {
		t := newTable("username", "service", "pid", "ip")
		for _, s := range conns {
			if m.userMatch(s.User) && m.ipMatch(s.IP) {
				t.add(s.User, s.Service, strconv.Itoa(s.Pid), s.IP)
			}
		}
		return t, exOK
	}
	type group struct {
		user, service string
		n             int
		pids, ips     []string
	}
	var order []*group
	byKey := map[[2]string]*group{}
	for _, s := range conns {
		user := s.User
		if user == "" {
			user = s.IP
		}
		k := [2]string{user, s.Service}
		g := byKey[k]
		if g == nil {
			g = &group{user: user, service: s.Service}
			byKey[k] = g
			order = append(order, g)
		}
		g.n++
		g.pids = appendUnique(g.pids, strconv.Itoa(s.Pid))
		if s.IP != "" {
			g.ips = appendUnique(g.ips, s.IP)
		}
	}
	t := newTable("username", "connections", "service", "pids", "ips")
	for _, g := range order {
		if !m.userMatch(g.user) {
			continue
		}
		if m.hasNet {
			any := false
			for _, ip := range g.ips {
				any = any || m.ipMatch(ip)
			}
			if !any {
				continue
			}
		}
		t.add(g.user, strconv.Itoa(g.n), g.service,
			"("+strings.Join(g.pids, " ")+")", "("+strings.Join(g.ips, " ")+")")
	}
	return t, exOK
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// cmdKick closes matching sessions. Over HTTP 2.3 always forces, so every session whose
// user and IP match goes; `mask: []` matches everyone.
func cmdKick(c *cmdCtx) (*table, int) {
	if !c.localSocketOK("anvil") {
		return nil, exTempFail
	}
	args, ok := c.array("mask")
	if !ok {
		c.log.Error("user and/or ip[/bits] must be specified.")
		return nil, exUsage
	}
	m, ok := parseMask(args)
	if !ok {
		return nil, exUsage
	}
	users := c.svc.KickSessions(func(s Conn) bool { return m.userMatch(s.User) && m.ipMatch(s.IP) })
	if len(users) == 0 {
		return nil, exNotFound
	}
	sort.Strings(users)
	t := newTable("result")
	prev := ""
	for i, u := range users {
		if i > 0 && u == prev {
			continue
		}
		prev = u
		t.add(u)
	}
	return t, exOK
}

func cmdPenalty(c *cmdCtx) (*table, int) {
	if !c.localSocketOK("anvil") {
		return nil, exTempFail
	}
	var m mask
	if nm, ok := c.str("netmask"); ok {
		p, ok := parseNet(nm)
		if !ok {
			c.log.Error("Invalid netmask '" + nm + "' given")
			return nil, exUsage
		}
		// bits 0 (e.g. 0.0.0.0/0) means no filtering
		m.hasNet = p.Bits() > 0
		m.net = p
	}
	t := newTable("IP", "penalty", "last_penalty", "last_update")
	for _, r := range c.svc.Penalties() {
		if !m.ipMatch(r.IP) {
			continue
		}
		ip := ""
		if a, err := netip.ParseAddr(r.IP); err == nil {
			ip = a.String()
		}
		t.add(ip, strconv.Itoa(r.Penalty), unixdate2str(r.LastPenalty.Unix()),
			r.LastUpdate.Local().Format("15:04:05"))
	}
	return t, exOK
}

// localSocketOK checks an explicit socketPath for a service usher runs in-process.
func (c *cmdCtx) localSocketOK(name string) bool {
	p, ok := c.str("socket-path")
	if !ok || p == "" || p == filepath.Join(c.cfg.BaseDir, name) {
		return true
	}
	c.log.Error("net_connect_unix failed: no such service socket", "path", p)
	return false
}
