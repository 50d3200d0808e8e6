package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/usher-mail/usher/internal/doveadm"
	"github.com/usher-mail/usher/internal/router"
	"github.com/usher-mail/usher/internal/sessions"
)

// apiServices adapts the running server to what the doveadm commands need.
type apiServices struct{ srv *Server }

var _ doveadm.Services = apiServices{}

// DialAdmin implements doveadm.AdminDialer: "" is usher's own director
// in-process; otherwise a unix path or host[:port], as doveadm's -a.
func (a apiServices) DialAdmin(ctx context.Context, socketPath string) (net.Conn, error) {
	if socketPath == "" {
		return a.srv.admin.Pipe(), nil
	}
	network := "unix"
	if !strings.Contains(socketPath, "/") {
		network = "tcp"
		if _, _, err := net.SplitHostPort(socketPath); err != nil {
			socketPath = net.JoinHostPort(socketPath, "9091")
		}
	}
	if !a.srv.adminAllowed(socketPath) {
		// doveadm's -a may point anywhere; over the API that would let a
		// caller probe any host:port or socket from usher's address.
		return nil, fmt.Errorf("%s is not an admin socket of this director or its ring", socketPath)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, socketPath)
}

func (srv *Server) addAdminAt(addr string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.adminAt = append(srv.adminAt, addr)
}

// adminAllowed reports whether the API may dial socketPath: one of this
// director's own admin sockets, or the TCP admin port of a director listed
// in director_servers (the same port as ours).
func (srv *Server) adminAllowed(socketPath string) bool {
	srv.mu.Lock()
	own, s := srv.adminAt, srv.settings
	srv.mu.Unlock()
	if slices.Contains(own, socketPath) {
		return true
	}
	ap, err := netip.ParseAddrPort(socketPath)
	if err != nil {
		return false
	}
	for _, a := range own {
		if p, err := netip.ParseAddrPort(a); err == nil && p.Port() == ap.Port() {
			for _, m := range ringMembers(s) {
				if m.Addr() == ap.Addr().Unmap() {
					return true
				}
			}
		}
	}
	return false
}

func (a apiServices) UserHash(user string) (uint32, error) { return a.srv.router.Hash(user) }

func (a apiServices) UserList(ctx context.Context) ([]string, error) {
	return a.srv.router.KnownUsers(), nil
}

func (a apiServices) Sessions() []doveadm.Conn {
	pid := os.Getpid()
	var out []doveadm.Conn
	for _, s := range a.srv.sessions.List() {
		out = append(out, doveadm.Conn{User: s.User, Service: s.Service, IP: addrString(s.Client.Addr()), Pid: pid})
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (a apiServices) KickSessions(match func(doveadm.Conn) bool) []string {
	pid := os.Getpid()
	kicked := a.srv.sessions.Kick(func(s sessions.Session) bool {
		return match(doveadm.Conn{User: s.User, Service: s.Service, IP: addrString(s.Client.Addr()), Pid: pid})
	}, "Kicked by admin")
	a.srv.kickEvent("kick", kicked)
	return sortedUsers(kicked)
}

func sortedUsers(ss []sessions.Session) []string {
	seen := map[string]bool{}
	var users []string
	for _, s := range ss {
		if !seen[s.User] {
			seen[s.User] = true
			users = append(users, s.User)
		}
	}
	sort.Strings(users)
	return users
}

func (a apiServices) Penalties() []doveadm.PenaltyRecord {
	var out []doveadm.PenaltyRecord
	for _, r := range a.srv.penalties.Dump() {
		out = append(out, doveadm.PenaltyRecord{IP: r.IP, Penalty: r.Penalty, LastPenalty: r.LastPenalty, LastUpdate: r.LastUpdate})
	}
	return out
}

func (a apiServices) Metrics(reset bool) []doveadm.Metric {
	var out []doveadm.Metric
	for _, m := range a.srv.stats.Metrics(reset) {
		m := m
		out = append(out, doveadm.Metric{
			Name: m.Name, Field: "duration",
			Count: m.Count, Sum: m.Sum, Min: m.Min, Max: m.Max,
			Avg: m.Avg, Variance: m.Variance,
			Quantile: m.Percentile,
		})
	}
	return out
}

func (a apiServices) OldStatsDump(level, filter string) (doveadm.OldStats, error) {
	keys, rows, err := a.srv.stats.OldStats(level)
	return doveadm.OldStats{Keys: keys, Rows: rows}, err
}

func (a apiServices) OldStatsReset() { a.srv.stats.ResetOld() }

func (a apiServices) ProxySessions() []doveadm.ProxySession {
	var out []doveadm.ProxySession
	for _, s := range a.srv.sessions.List() {
		out = append(out, doveadm.ProxySession{
			User: s.User, Service: s.Service, SrcIP: addrString(s.Client.Addr()),
			DestIP: addrString(s.Backend.Addr()), DestPort: int(s.Backend.Port()),
		})
	}
	return out
}

func (a apiServices) ProxyKick(users []string, passdbField, host string) int {
	if passdbField != "" {
		return 0 // usher's sessions carry no alternative user names
	}
	want := map[string]bool{}
	for _, u := range users {
		want[u] = true
	}
	hostIP, _ := netip.ParseAddr(host)
	kicked := a.srv.sessions.Kick(func(s sessions.Session) bool {
		if host != "" {
			return s.Backend.Addr() == hostIP
		}
		return want[s.User]
	}, "Kicked by admin")
	a.srv.kickEvent("proxy kick", kicked)
	return len(kicked)
}

func (a apiServices) StopService(names []string) []string { return a.srv.StopServices(names) }
func (a apiServices) Reload() error                       { return a.srv.Reload() }
func (a apiServices) Stop()                               { a.srv.Stop() }

// kicker lets the router close sessions through the registry.
type kicker struct{ r *sessions.Registry }

func (k kicker) KickHash(h uint32, reason string) int { return k.r.KickHash(h, reason) }
func (k kicker) KickUser(u, reason string) int        { return k.r.KickUser(u, reason) }

// Live lists the registry's mappings for the router.
func (k kicker) Live() []router.LiveKey {
	ms := k.r.Mappings()
	out := make([]router.LiveKey, len(ms))
	for i, m := range ms {
		out[i] = router.LiveKey{Tag: m.Tag, Hash: m.Hash}
	}
	return out
}
