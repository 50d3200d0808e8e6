// Package pop3 is the POP3 front-end of the director: it greets clients the way Dovecot's
// pop3-login does, answers the pre-login commands (CAPA, USER/PASS, AUTH, STLS, XCLIENT,
// QUIT), logs in on the backend chosen by the router on the client's behalf (forwarding the
// client's address with XCLIENT) and then relays bytes until either side closes.
package pop3

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/usher-mail/usher/internal/login"
)

// Config holds the POP3 front-end settings (login.Config; MaxLineLength defaults to 1024, the
// input buffer of Dovecot's login processes, where a longer line ends the connection with
// "Input buffer full"; BackendPort to 110, or 995 with BackendSSL "yes").
type Config struct {
	login.Config
}

func (c Config) withDefaults() Config {
	c.Config = c.Config.WithDefaults(login.Defaults{MaxLineLength: 1024, BackendPort: 110, BackendTLSPort: 995})
	return c
}

// Service is the service name given to sessions, stats and penalties.
const Service = "pop3"

// Server accepts POP3 clients on any number of listeners; its Serve, Close and Shutdown are
// login.Front's.
type Server struct {
	*login.Front[*conn]
	cfg Config
	env *login.Env
	log *slog.Logger
	// remoteAddr lets tests pretend a connection comes from elsewhere (the plaintext policy
	// depends on the client address, and tests only have loopback).
	remoteAddr func(net.Conn) netip.AddrPort
}

// NewServer returns a server; env.Router must be set.
func NewServer(cfg Config, env *login.Env) *Server {
	env = env.WithDefaults()
	s := &Server{
		cfg: cfg.withDefaults(),
		env: env,
		log: env.Logger.With("service", Service),
	}
	refuse := "-ERR [SYS/TEMP] Too many connections, try again later.\r\n"
	s.Front = login.NewFront(cfg.Limiter, refuse, cfg.ImplicitTLS, s.newConn, (*conn).serve)
	return s
}
