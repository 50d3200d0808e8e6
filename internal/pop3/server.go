// Package pop3 is the POP3 front-end of the director: it greets clients the way Dovecot's
// pop3-login does, answers the pre-login commands (CAPA, USER/PASS, AUTH, STLS, XCLIENT,
// QUIT), logs in on the backend chosen by the router on the client's behalf (forwarding the
// client's address with XCLIENT) and then relays bytes until either side closes.
package pop3

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
)

// Config holds the POP3 front-end settings. Zero values take the defaults noted per field.
type Config struct {
	// Greeting is login_greeting (default "Dovecot ready.").
	Greeting string
	// TLS enables STLS (or implicit TLS); nil means no TLS.
	TLS *tls.Config
	// ImplicitTLS makes the listener speak TLS from the first byte (port 995).
	ImplicitTLS bool
	// MaxLineLength bounds one pre-login line (default 1024, the input buffer of Dovecot's
	// login processes: a longer line ends the connection with "Input buffer full").
	MaxLineLength int
	// MaxBadCommands disconnects a client after this many unknown commands (default 3, as
	// Dovecot's pop3-login).
	MaxBadCommands int
	// MaxCommands bounds the commands a client may send before logging in (default 30,
	// usher_max_prelogin_commands, as for IMAP).
	MaxCommands int
	// LoginTimeout is the time a client has to log in (default 60 s).
	LoginTimeout time.Duration
	// BackendPort is the backends' POP3 port (default 110, or 995 with BackendSSL "yes").
	BackendPort int
	// BackendSSL is "no" (default), "yes" (implicit TLS) or "starttls" (STLS).
	BackendSSL string
	// BackendTLS is used for TLS to backends (nil: a default config).
	BackendTLS *tls.Config
	// Limiter holds the service's connection ceilings, shared by all its
	// listeners (nil: none); a connection over one is answered in the
	// protocol's words and closed.
	Limiter *netx.Limiter
}

func (c Config) withDefaults() Config {
	if c.Greeting == "" {
		c.Greeting = "Dovecot ready."
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = 1024
	}
	if c.MaxBadCommands <= 0 {
		c.MaxBadCommands = 3
	}
	if c.MaxCommands <= 0 {
		c.MaxCommands = 30
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 60 * time.Second
	}
	if c.BackendSSL == "" {
		c.BackendSSL = "no"
	}
	if c.BackendPort <= 0 {
		c.BackendPort = 110
		if c.BackendSSL == "yes" {
			c.BackendPort = 995
		}
	}
	return c
}

// Service is the service name given to sessions, stats and penalties.
const Service = "pop3"

// Server accepts POP3 clients on any number of listeners.
type Server struct {
	cfg Config
	env *login.Env
	log *slog.Logger
	// remoteAddr lets tests pretend a connection comes from elsewhere (the plaintext policy
	// depends on the client address, and tests only have loopback).
	remoteAddr func(net.Conn) netip.AddrPort
	conns      *login.ConnSet[*conn]
}

// NewServer returns a server; env.Router must be set.
func NewServer(cfg Config, env *login.Env) *Server {
	env = env.WithDefaults()
	s := &Server{
		cfg:   cfg.withDefaults(),
		env:   env,
		log:   env.Logger.With("service", Service),
		conns: login.NewConnSet[*conn](),
	}
	refuse := "-ERR [SYS/TEMP] Too many connections, try again later.\r\n"
	if cfg.ImplicitTLS {
		refuse = "" // no words before the TLS handshake
	}
	s.conns.SetLimiter(cfg.Limiter, refuse)
	return s
}

// Serve accepts connections on l until l is closed (by the caller, Close or Shutdown), then
// returns nil; other accept errors are returned.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.ServeThen(l, s.newConn, (*conn).serve)
}

// Close stops accepting and closes every connection at once, proxied ones included, and waits
// for their goroutines to end.
func (s *Server) Close() {
	s.conns.Close(kickForShutdown)
}

const shutdownText = "Server shutting down."

func kickForShutdown(c *conn) { c.Kick(shutdownText) }

// Shutdown stops accepting, sends "-ERR Server shutting down." to clients that have not
// logged in yet, and waits for proxied sessions to end. When ctx ends first, the remaining
// sessions are kicked with the same text and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx, func(c *conn) { c.ClosePreLogin(shutdownText) }, kickForShutdown)
}
