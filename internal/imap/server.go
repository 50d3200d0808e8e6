// Package imap is the IMAP front-end of the director: it greets clients the way Dovecot's
// imap-login does, answers the pre-login commands, takes the credentials from LOGIN or
// AUTHENTICATE, logs in on the backend chosen by the router on the client's behalf (forwarding
// the client's address with ID) and then relays bytes until either side closes.
package imap

import (
	"github.com/usher-mail/usher/internal/login"
)

// Config holds the IMAP front-end settings: the shared ones (login.Config; MaxLineLength
// defaults to 64 KiB, BackendPort to 143, or 993 with BackendSSL "yes") and IMAP's own.
// Zero values take the defaults noted per field.
type Config struct {
	login.Config
	// MaxLiteral bounds one pre-login literal (default 8 KiB: a literal before login only ever
	// carries a user name or password, and Dovecot refuses a 100 kB one with the same BYE).
	MaxLiteral int
	// IDRetain is imap_id_retain: the client's own ID parameters are passed on to the
	// backend in the proxy's ID command (Dovecot's default is no).
	IDRetain bool
}

func (c Config) withDefaults() Config {
	c.Config = c.Config.WithDefaults(login.Defaults{MaxLineLength: 64 << 10, BackendPort: 143, BackendTLSPort: 993})
	if c.MaxLiteral <= 0 {
		c.MaxLiteral = 8 << 10
	}
	return c
}

// Service is the service name given to sessions, stats and penalties.
const Service = "imap"

// Server accepts IMAP clients on any number of listeners; its environment, Serve, Close
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
	refuse := "* BYE [UNAVAILABLE] Too many connections, try again later.\r\n"
	s.Front = login.NewFront(Service, env, s.cfg.Config, refuse, s.newConn, (*conn).preLogin)
	s.mechs.Probe, s.mechs.Hosts = s.probeMechanisms, env.Backends
	s.mechs.Refresh()
	return s
}
