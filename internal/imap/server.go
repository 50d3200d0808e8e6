// Package imap is the IMAP front-end of the director: it greets clients the way Dovecot's
// imap-login does, answers the pre-login commands, takes the credentials from LOGIN or
// AUTHENTICATE, logs in on the backend chosen by the router on the client's behalf (forwarding
// the client's address with ID) and then relays bytes until either side closes.
package imap

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

// Config holds the IMAP front-end settings. Zero values take the defaults noted per field.
type Config struct {
	// Greeting is login_greeting (default "Dovecot ready.").
	Greeting string
	// TLS enables STARTTLS (or implicit TLS); nil means no TLS.
	TLS *tls.Config
	// ImplicitTLS makes the listener speak TLS from the first byte (port 993).
	ImplicitTLS bool
	// MaxLineLength bounds one pre-login command, literals included (default 64 KiB).
	MaxLineLength int
	// MaxLiteral bounds one pre-login literal (default 8 KiB: a literal before login only ever
	// carries a user name or password, and Dovecot refuses a 100 kB one with the same BYE).
	MaxLiteral int
	// MaxBadCommands disconnects a client after this many bad commands (default 3, which is
	// what Dovecot 2.3's imap-login does: the third one gets "* BYE Too many invalid IMAP
	// commands.").
	MaxBadCommands int
	// MaxCommands bounds the commands a client may send before logging in
	// (default 30, usher_max_prelogin_commands).
	MaxCommands int
	// LoginTimeout is the time a client has to log in (default 60 s, Dovecot's
	// CLIENT_LOGIN_TIMEOUT_MSECS).
	LoginTimeout time.Duration
	// BackendPort is the backends' IMAP port (default 143, or 993 with BackendSSL "yes").
	BackendPort int
	// BackendSSL is "no" (default), "yes" (implicit TLS) or "starttls".
	BackendSSL string
	// BackendTLS is used for TLS to backends (nil: a default config).
	BackendTLS *tls.Config
	// IDRetain is imap_id_retain: the client's own ID parameters are passed on to the
	// backend in the proxy's ID command (Dovecot's default is no).
	IDRetain bool
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
		c.MaxLineLength = 64 << 10
	}
	if c.MaxLiteral <= 0 {
		c.MaxLiteral = 8 << 10
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
		c.BackendPort = 143
		if c.BackendSSL == "yes" {
			c.BackendPort = 993
		}
	}
	return c
}

// Service is the service name given to sessions, stats and penalties.
const Service = "imap"

// Server accepts IMAP clients on any number of listeners.
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
	refuse := "* BYE [UNAVAILABLE] Too many connections, try again later.\r\n"
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

// Shutdown stops accepting, sends "* BYE Server shutting down." to clients that have not logged
// in yet, and waits for proxied sessions to end. When ctx ends first, the remaining sessions
// are kicked with the same text and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx, func(c *conn) { c.ClosePreLogin(shutdownText) }, kickForShutdown)
}
