// Package pop3 is the POP3 front-end of the director: it greets clients the way Dovecot's
// pop3-login does, answers the pre-login commands (CAPA, USER/PASS, AUTH, STLS, XCLIENT,
// QUIT), logs in on the backend chosen by the router on the client's behalf (forwarding the
// client's address with XCLIENT) and then relays bytes until either side closes.
package pop3

import (
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

// Server accepts POP3 clients on any number of listeners; its environment, Serve, Close
// and Shutdown are login.Front's.
type Server struct {
	*login.Front[*conn]
	cfg Config
	// mechs are the relayed SASL mechanisms the backends offer (login/mechs.go).
	mechs login.Mechs
}

// NewServer returns a server; env.Router must be set.
func NewServer(cfg Config, env *login.Env) *Server {
	s := &Server{cfg: cfg.withDefaults()}
	refuse := "-ERR [SYS/TEMP] Too many connections, try again later.\r\n"
	s.Front = login.NewFront(Service, env, s.cfg.Config, refuse, s.newConn, (*conn).preLogin)
	s.mechs.Probe, s.mechs.Hosts = s.probeMechanisms, env.Backends
	s.mechs.Refresh()
	return s
}
