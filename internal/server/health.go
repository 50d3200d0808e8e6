package server

import (
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/health"
)

// The built-in health checks (docs/cluster.md "Health checks and drain").
// The raft leader checks every backend: raft already elects exactly one
// leader that the whole ring agrees on and fences a deposed one (it can
// commit nothing), every verdict has to be committed by the leader anyway,
// and a director cut off from the majority, which could not commit a
// verdict, never checks. One director probing N backends every interval is
// little load.

// healthConfig: btc is the proxies' TLS towards the backends (backendTLS), so a probe verifies
// a backend's certificate exactly as a proxied session does. passdbPort and known are
// passdb.DB.Port's answer for the check's protocol: a port there replaces backend_*_port, and
// unless known the port is a guess (health.Config.PortKnown).
func healthConfig(s *config.Settings, source netip.Addr, btc *tls.Config, passdbPort int, known bool) health.Config {
	port := s.BackendIMAPPort
	switch s.UsherHealthCheck {
	case health.KindPOP3:
		port = s.BackendPOP3Port
	case health.KindLMTP:
		port = s.BackendLMTPPort
	}
	if passdbPort != 0 {
		port = passdbPort
	}
	return health.Config{
		Probe: health.Probe{
			Kind: s.UsherHealthCheck, Port: port, SSL: s.BackendSSL, TLS: btc,
			User: s.UsherHealthCheckUser, Password: s.UsherHealthCheckPassword,
			Timeout: s.UsherHealthCheckTimeout, Source: source,
			ProxyHeader: s.BackendProxyProtocol == "v2",
		},
		PortKnown: known,
		Interval:  s.UsherHealthCheckInterval,
		Fall:      s.UsherHealthCheckFall,
		Rise:      s.UsherHealthCheckRise,
	}
}

// probeSource: in a ring, probes leave from this director's ring address,
// so that a backend's log tells which director checked it. An address this
// machine cannot send from (a ring address behind NAT, say) would fail
// every probe and put every backend down: the system picks then.
func (srv *Server) probeSource(s *config.Settings) netip.Addr {
	if srv.ring == nil {
		return netip.Addr{}
	}
	ip := selfAddr(s).Addr()
	c, err := net.ListenPacket("udp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		srv.log.Warn("health checks: not sent from the ring address", "addr", ip.String(), "err", err)
		return netip.Addr{}
	}
	c.Close()
	return ip
}

// setHealth starts, reconfigures or stops the checker for s
// (usher_health_check = none stops it).
func (srv *Server) setHealth(s *config.Settings) {
	// The passdb's port is read at start and reload. A Dovecot auth service
	// may answer any port=: the port is a guess, which the checker replaces
	// per host with the port logins went to (learnBackendPort).
	passdbPort, known := srv.passdb.Load().Port(s.UsherHealthCheck)
	if srv.authService.Load() != nil {
		passdbPort, known = 0, false
	}
	if passdbPort != 0 && s.UsherHealthCheck != health.KindNone {
		srv.log.Info("health checks probe the passdb's port", "check", s.UsherHealthCheck, "port", passdbPort)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	switch {
	case s.UsherHealthCheck == health.KindNone:
		if srv.checker != nil {
			srv.checker.Close()
			srv.checker = nil
		}
	case srv.checker != nil:
		srv.checker.SetConfig(healthConfig(s, srv.probeSource(s), srv.btc, passdbPort, known))
	default:
		srv.checker = health.New(healthConfig(s, srv.probeSource(s), srv.btc, passdbPort, known), health.Deps{
			Active:   srv.node.IsLeader,
			Targets:  srv.healthTargets,
			Report:   srv.reportHealth,
			Evacuate: srv.router.Evacuate,
			Logger:   srv.log,
		}, srv.healthMetrics)
	}
}

// learnBackendPort tells the checker where a login of service was proxied
// to: unless the port is known, its checks of that protocol probe that host
// there (health.Checker.Learn).
func (srv *Server) learnBackendPort(service string, dest netip.AddrPort) {
	srv.mu.Lock()
	c := srv.checker
	srv.mu.Unlock()
	if c != nil {
		c.Learn(service, dest)
	}
}

func (srv *Server) healthTargets() []health.Target {
	var out []health.Target
	for _, h := range srv.router.Hosts() {
		out = append(out, health.Target{
			IP: h.IP, HealthDown: h.HealthDown,
			Evacuate: h.Down && h.Cause == cluster.CauseHealth && h.Users > 0,
		})
	}
	return out
}

func (srv *Server) stopHealth() {
	srv.mu.Lock()
	c := srv.checker
	srv.checker = nil
	srv.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// CountBackend counts the proxied sessions to a backend (drain progress).
func (k kicker) CountBackend(ip netip.Addr) int {
	n := 0
	for _, s := range k.r.List() {
		if s.Backend.Addr() == ip {
			n++
		}
	}
	return n
}
