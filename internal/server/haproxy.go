package server

import (
	"net"
	"strconv"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// withHAProxy puts the PROXY protocol on the sockets of a listener with haproxy = yes: each
// accepted connection from haproxy_trusted_networks has its header read on the goroutine that
// serves it, the others are closed at once (see proxyproto.Listener). Every such listener
// shares srv.haproxy, which a reload updates. Other listeners are returned as they are, so a
// PROXY line reaches their protocol as a command.
func (srv *Server) withHAProxy(s *config.Settings, l *config.InetListener, lns []net.Listener) []net.Listener {
	if !l.HAProxy {
		return lns
	}
	if len(s.HAProxyTrustedNetworks) == 0 {
		srv.log.Warn("haproxy = yes but haproxy_trusted_networks is empty: every connection to this listener is refused, as in Dovecot",
			"listener", l.Name, "at", l.File+":"+strconv.Itoa(l.Line))
	}
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = &proxyproto.Listener{Listener: ln, Policy: srv.haproxy}
	}
	return out
}
