// Package sieve is the ManageSieve front-end of the director: it greets clients with the
// capability list of Dovecot's managesieve-login, answers the pre-login commands (CAPABILITY,
// STARTTLS, AUTHENTICATE, NOOP, LOGOUT, XCLIENT), logs in on the backend chosen by the router
// with the client's credentials (forwarding the client's address with XCLIENT when the
// backend offers it) and then relays bytes until either side closes.
package sieve

import (
	"github.com/usher-mail/usher/internal/login"
)

// Config holds the ManageSieve front-end settings: the shared ones (login.Config;
// MaxLineLength defaults to 1024, the input buffer of Dovecot's login processes, BackendPort
// to 4190) and ManageSieve's own. Zero values take the defaults noted per field.
type Config struct {
	login.Config
	// Implementation is managesieve_implementation_string (default "Dovecot Pigeonhole";
	// Debian's build says "Dovecot (Debian) Pigeonhole").
	Implementation string
	// SieveExtensions is managesieve_sieve_capability (default: Pigeonhole 0.5's list).
	SieveExtensions string
	// NotifyMethods is managesieve_notify_capability (default "mailto").
	NotifyMethods string
}

// DefaultSieveExtensions is what Pigeonhole 0.5 (Dovecot 2.3) announces by default.
const DefaultSieveExtensions = "fileinto reject envelope encoded-character vacation subaddress " +
	"comparator-i;ascii-numeric relational regex imap4flags copy include variables body enotify " +
	"environment mailbox date index ihave duplicate mime foreverypart extracttext"

func (c Config) withDefaults() Config {
	c.Config = c.Config.WithDefaults(login.Defaults{MaxLineLength: 1024, BackendPort: 4190, BackendTLSPort: 4190})
	if c.Implementation == "" {
		c.Implementation = "Dovecot Pigeonhole"
	}
	if c.SieveExtensions == "" {
		c.SieveExtensions = DefaultSieveExtensions
	}
	if c.NotifyMethods == "" {
		c.NotifyMethods = "mailto"
	}
	return c
}

// Service is the service name given to sessions, stats and penalties. Dovecot's passdb sees
// %s = "sieve" for managesieve-login too (verified against 2.3.19), so who/kick filter on it.
const Service = "sieve"

// Server accepts ManageSieve clients on any number of listeners; its environment, Serve, Close
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
	refuse := `BYE (TRYLATER) "Too many connections, try again later."` + "\r\n"
	s.Front = login.NewFront(Service, env, s.cfg.Config, refuse, s.newConn, (*conn).preLogin)
	s.mechs.Probe, s.mechs.Hosts = s.probeMechanisms, env.Backends
	s.mechs.Refresh()
	return s
}
