// Package lmtp is the LMTP front-end of the director. Each RCPT TO is routed on its own: the
// recipient becomes a user name as Dovecot's auth_username_format would make it, the router
// picks that user's backend, and the recipient is checked on that backend. A transaction opens
// at most one connection per backend; the message is streamed to every backend involved while
// it is read from the client, and the client gets one reply per recipient, in RCPT order, only
// once every backend has answered. A recipient is acknowledged with 250 only when its own
// backend said 250 for it; a backend that fails gets its recipients "451 4.4.0 Proxy failed".
package lmtp

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
)

// Service is the service name given to sessions and stats.
const Service = "lmtp"

// Config holds the LMTP front-end settings. Zero values take the defaults noted per field.
type Config struct {
	// Hostname is the name in the greeting and the LHLO reply (default: env.Hostname).
	Hostname string
	// Greeting is login_greeting (default "Dovecot ready."); Dovecot's LMTP greets with
	// "220 <hostname> <login_greeting>".
	Greeting string
	// BackendPort is the backends' LMTP port (default 24).
	BackendPort int
	// UsernameFormat is auth_username_format (default "%Lu"): how a recipient address becomes
	// the user name that is routed.
	UsernameFormat string
	// RecipientDelimiter is recipient_delimiter (default "+"): the detail after it is dropped
	// from the local part before the user name is made. "-" disables it (Dovecot has no way
	// to say "none" but an empty value, which here means the default).
	RecipientDelimiter string
	// MaxMessageSize bounds one message in bytes, advertised as SIZE (default 50 MiB; negative:
	// no limit). A larger message gets 552 for every recipient and reaches no backend's mailbox.
	MaxMessageSize int64
	// ProxyTimeout bounds each wait for a backend: connect, every reply, every write (default
	// 125 s, Dovecot's LMTP proxy_timeout default).
	ProxyTimeout time.Duration
	// IdleTimeout is how long a client may stay silent (default 5 min).
	IdleTimeout time.Duration
	// MaxLineLength bounds one command line (default 4 KiB).
	MaxLineLength int
	// MaxBadCommands disconnects a client after this many invalid commands (default 10).
	MaxBadCommands int
	// MaxRecipients bounds the RCPT commands of one transaction (default
	// DefaultMaxRecipients): each one routes a user and may open a backend
	// connection. Past it RCPT gets 452 (RFC 5321 4.5.3.1.10).
	MaxRecipients int
	// BackendProxyProtocol (backend_proxy_protocol = v2) opens every backend connection with a
	// PROXY v2 header carrying the client's address, for backends listening with haproxy = yes;
	// a client on a unix socket is sent as LOCAL.
	BackendProxyProtocol bool
	// Limiter holds the service's connection ceilings, shared by all its
	// listeners (nil: none); a connection over one is answered in the
	// protocol's words and closed.
	Limiter *netx.Limiter
}

// DefaultMaxRecipients is MaxRecipients' default, the recipient count RFC
// 5321 asks a server to accept at least a hundred times over.
const DefaultMaxRecipients = 1000

// DefaultMaxMessageSize is MaxMessageSize's default.
const DefaultMaxMessageSize = 50 << 20

func (c Config) withDefaults(env *login.Env) Config {
	if c.Hostname == "" {
		c.Hostname = env.Hostname
	}
	if c.Greeting == "" {
		c.Greeting = "Dovecot ready."
	}
	if c.BackendPort <= 0 {
		c.BackendPort = 24
	}
	if c.UsernameFormat == "" {
		c.UsernameFormat = "%Lu"
	}
	switch c.RecipientDelimiter {
	case "":
		c.RecipientDelimiter = "+"
	case "-":
		c.RecipientDelimiter = ""
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ProxyTimeout <= 0 {
		c.ProxyTimeout = 125 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = 4 << 10
	}
	if c.MaxBadCommands <= 0 {
		c.MaxBadCommands = 10
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	return c
}

// Server accepts LMTP clients on any number of listeners.
type Server struct {
	cfg Config
	env *login.Env
	log *slog.Logger
	// dial opens backend connections; tests replace it to reach fake backends on one IP.
	dial  func(ctx context.Context, addr string) (net.Conn, error)
	conns *login.ConnSet[*conn]
}

// NewServer returns a server; env.Router must be set. LMTP has no passwords, so env's
// Penalties and plaintext policy are not used.
func NewServer(cfg Config, env *login.Env) *Server {
	env = env.WithDefaults()
	d := netx.BackendDialer()
	s := &Server{
		cfg:   cfg.withDefaults(env),
		env:   env,
		log:   env.Logger.With("service", Service),
		dial:  func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		conns: login.NewConnSet[*conn](),
	}
	s.conns.SetLimiter(cfg.Limiter, "421 4.3.2 Too many connections, try again later.\r\n")
	return s
}

// Serve accepts connections on l until l is closed (by the caller, Close or Shutdown), then
// returns nil; other accept errors are returned.
func (s *Server) Serve(l net.Listener) error {
	return s.conns.Serve(l, s.newConn, (*conn).serve)
}

// Close stops accepting and cuts every connection at once, transactions in progress included
// (their clients got no 250 for them, so they will retry), and waits for the goroutines.
func (s *Server) Close() {
	s.conns.Close((*conn).abort)
}

// Shutdown stops accepting and lets every transaction in progress finish: a client is sent
// "421 4.3.2 Shutting down" and disconnected as soon as it has no open transaction. When ctx
// ends first, the remaining connections are cut as Close does and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx, (*conn).drain, (*conn).abort)
}
