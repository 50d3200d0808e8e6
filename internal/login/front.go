package login

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// Config holds the settings every login front-end shares. A protocol's Config embeds it and
// adds its own; zero values take the defaults noted per field, some of them the protocol's
// (see WithDefaults).
type Config struct {
	// Greeting is login_greeting (default "Dovecot ready.").
	Greeting string
	// TLS enables STARTTLS (STLS in POP3) or implicit TLS; nil means no TLS.
	TLS *tls.Config
	// ImplicitTLS makes the listener speak TLS from the first byte (ports 993, 995).
	ImplicitTLS bool
	// MaxLineLength bounds one pre-login command, literals included (the protocol's default).
	MaxLineLength int
	// MaxBadCommands disconnects a client after this many bad commands (default 3, as
	// Dovecot 2.3's login processes: IMAP's third one gets "* BYE Too many invalid IMAP
	// commands.").
	MaxBadCommands int
	// MaxCommands bounds the commands a client may send before logging in (default 30,
	// usher_max_prelogin_commands).
	MaxCommands int
	// LoginTimeout is the time a client has to log in (default 60 s, Dovecot's
	// CLIENT_LOGIN_TIMEOUT_MSECS).
	LoginTimeout time.Duration
	// BackendPort is the backends' port for the protocol (the protocol's default).
	BackendPort int
	// BackendSSL is "no" (default), "yes" (implicit TLS) or "starttls".
	BackendSSL string
	// BackendTLS is used for TLS to backends (nil: a default config).
	BackendTLS *tls.Config
	// BackendProxyProtocol (backend_proxy_protocol = v2) opens every backend connection with
	// a PROXY v2 header carrying the client's address, for backends listening with haproxy.
	BackendProxyProtocol bool
	// Limiter holds the service's connection ceilings, shared by all its listeners (nil:
	// none); a connection over one is answered in the protocol's words and closed.
	Limiter *netx.Limiter
}

// Defaults are a protocol's own defaults for Config.
type Defaults struct {
	MaxLineLength int
	// BackendPort is the backends' plain port, BackendTLSPort their implicit-TLS one
	// (BackendSSL "yes").
	BackendPort, BackendTLSPort int
}

// WithDefaults returns c with its zero values replaced by the shared defaults and d.
func (c Config) WithDefaults(d Defaults) Config {
	if c.Greeting == "" {
		c.Greeting = "Dovecot ready."
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = d.MaxLineLength
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
		c.BackendPort = d.BackendPort
		if c.BackendSSL == "yes" {
			c.BackendPort = d.BackendTLSPort
		}
	}
	return c
}

// ShutdownText is what a client is told when its front-end closes or shuts down.
const ShutdownText = "Server shutting down."

// FrontConn is a front-end connection as a Front runs it: a type that embeds Conn.
type FrontConn interface {
	comparable
	Kick(reason string)
	ClosePreLogin(text string)
	loginConn() *Conn
}

// Front is the server part every login front-end (IMAP, POP3, ManageSieve) shares: its
// environment, listeners and connections, their ceilings, the hand-off of a logged-in session
// to the relay, and the two ways of stopping. A protocol's Server embeds it and keeps only its
// protocol's settings and dialogue.
type Front[C FrontConn] struct {
	Env *Env         // with defaults
	Log *slog.Logger // the service's
	// RemoteAddr, when set, stands in for the socket's peer address: tests pretend a
	// connection comes from elsewhere (the plaintext policy depends on the client address,
	// and tests only have loopback).
	RemoteAddr func(net.Conn) netip.AddrPort

	service  string
	cfg      Config
	conns    *ConnSet[C]
	newConn  func(net.Conn) C
	preLogin func(C) *Session
}

// NewFront returns the server of service on env. Each accepted connection becomes newConn's
// C, whose preLogin runs the protocol's dialogue up to a logged-in Session (nil: the
// connection is over), which the Front then relays. cfg's Limiter (nil: none) is enforced
// with refuse as the answer, the protocol's words with CRLF; a listener with implicit TLS
// refuses in silence, as it has no words before the handshake.
func NewFront[C FrontConn](service string, env *Env, cfg Config, refuse string,
	newConn func(net.Conn) C, preLogin func(C) *Session) *Front[C] {
	env = env.WithDefaults()
	f := &Front[C]{
		Env: env, Log: env.Logger.With("service", service),
		service: service, cfg: cfg, conns: NewConnSet[C](), newConn: newConn, preLogin: preLogin,
	}
	if cfg.ImplicitTLS {
		refuse = ""
	}
	f.conns.SetLimiter(cfg.Limiter, refuse)
	return f
}

// InitConn prepares c, the Conn of a connection newConn is making, for nc; lastLine formats
// the protocol's parting line.
func (f *Front[C]) InitConn(c *Conn, nc net.Conn, lastLine func(text string) string) {
	c.Init(nc, f.RemoteAddr, f.Log, lastLine)
}

// Serve accepts connections on l until l is closed (by the caller, Close or Shutdown), then
// returns nil; other accept errors are returned.
func (f *Front[C]) Serve(l net.Listener) error {
	return f.conns.ServeThen(l, f.newConn, func(c C) func(end func()) {
		return serve(c.loginConn(), f.Env, f.service, func() *Session { return f.preLogin(c) })
	})
}

// Login runs the login pipeline (see Login) for c with cr, in the protocol's words: texts
// answer a failed login, answer writes one answer, and dialogue logs the user in on the
// backend. It returns the logged-in Session; every failure has been answered, and next says
// whether the client may go on.
func (f *Front[C]) Login(c *Conn, cr Creds, texts *Texts, answer func(string) error, dialogue Dialogue) (s *Session, next bool) {
	var header []byte
	if f.cfg.BackendProxyProtocol {
		header = c.ProxyHeader()
	}
	return Login(f.Env, c.Attempt(f.service, cr, f.cfg.BackendPort), Frontend{
		Texts: texts, Sleep: f.Sleep, Answer: answer, Backend: f.cfg.Backend(dialogue, header),
	})
}

// Sleep waits d, a login penalty; false when the server starts closing meanwhile.
func (f *Front[C]) Sleep(d time.Duration) bool { return f.conns.Sleep(d) }

// Close stops accepting and kicks every connection at once, proxied ones included, with
// ShutdownText, and waits for their goroutines to end.
func (f *Front[C]) Close() {
	f.conns.Close(kickForShutdown[C])
}

// Shutdown stops accepting, sends the protocol's parting line with ShutdownText to clients
// that have not logged in yet, and waits for proxied sessions to end. When ctx ends first,
// the remaining sessions are kicked with the same text and ctx's error is returned.
func (f *Front[C]) Shutdown(ctx context.Context) error {
	return f.conns.Shutdown(ctx, func(c C) { c.ClosePreLogin(ShutdownText) }, kickForShutdown[C])
}

func kickForShutdown[C FrontConn](c C) { c.Kick(ShutdownText) }

// Dialogue logs a user in on a connected backend stream (see DialBackend).
type Dialogue func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*Session, Result)

// Backend returns a Frontend.Backend that connects as c says (BackendSSL, BackendTLS), sends
// header (a PROXY header; nil: none) and runs dialogue on the stream.
func (c Config) Backend(dialogue Dialogue, header []byte) func(ctx context.Context, dest netip.AddrPort) (*Session, Result) {
	return func(ctx context.Context, dest netip.AddrPort) (*Session, Result) {
		return DialBackend(ctx, dest, c.BackendSSL, c.BackendTLS, header, func(nc net.Conn, br *bufio.Reader) (*Session, Result) {
			return dialogue(ctx, nc, br, dest)
		})
	}
}

// ConnSet is the part of a front-end server every protocol shares: the accept loop, the
// listeners and live connections it tracks, and the two ways of stopping (Close at once,
// Shutdown with a drain). C is the front-end's connection type; the set never looks inside
// it, the front-end says how to start, drain and kick one. The zero value is not usable;
// call NewConnSet.
type ConnSet[C comparable] struct {
	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[C]struct{}
	wg        sync.WaitGroup
	stop      chan struct{}

	limiter *netx.Limiter // nil: no ceilings
	refuse  string        // written to a connection over a ceiling
}

// SetLimiter makes the set admit connections only under l's ceilings,
// answering refused ones with refuse (the protocol's words, with CRLF; ""
// on implicit TLS, which has no words before the handshake). Call it before
// Serve.
func (s *ConnSet[C]) SetLimiter(l *netx.Limiter, refuse string) {
	s.limiter, s.refuse = l, refuse
}

// NewConnSet returns an empty set that accepts connections.
func NewConnSet[C comparable]() *ConnSet[C] {
	return &ConnSet[C]{
		listeners: map[net.Listener]struct{}{},
		conns:     map[C]struct{}{},
		stop:      make(chan struct{}),
	}
}

// Stopping is closed once the set starts closing, so that waits of connections being torn
// down (penalty sleeps) end early.
func (s *ConnSet[C]) Stopping() <-chan struct{} { return s.stop }

// Sleep waits d, a login penalty; false when the set starts closing meanwhile.
func (s *ConnSet[C]) Sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// Serve accepts connections on l until l is closed (by the caller, Close or Shutdown), then
// returns nil; other accept errors are returned. Each accepted connection becomes newConn's
// C and runs serve on a worker goroutine (see runWorker), tracked until serve returns.
func (s *ConnSet[C]) Serve(l net.Listener, newConn func(net.Conn) C, serve func(C)) error {
	return s.ServeThen(l, newConn, func(c C) func(func()) { serve(c); return nil })
}

// ServeThen is Serve for a connection handler that may hand the rest of the
// connection's life (a proxied session) to a continuation: serve returns it,
// or nil when the connection is done. The continuation is called with the
// function to call when the session is over, from whichever goroutine ends it;
// the connection stays tracked until then.
func (s *ConnSet[C]) ServeThen(l net.Listener, newConn func(net.Conn) C, serve func(C) func(end func())) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		nc, err := netx.Accept(l)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if pc, ok := nc.(*proxyproto.Conn); ok {
			// haproxy = yes: the header names the client the ceilings count, so admission
			// waits for it, on a worker: a balancer slow to send it holds up no accept.
			runWorker(func() {
				if pc.Handshake() == nil {
					s.start(pc, newConn, serve, func(f func()) { f() })
				}
			})
			continue
		}
		s.start(nc, newConn, serve, runWorker)
	}
}

// start admits nc under the ceilings, makes it a C and serves it through run: on a worker, or
// on the worker start is called from.
func (s *ConnSet[C]) start(nc net.Conn, newConn func(net.Conn) C, serve func(C) func(end func()), run func(func())) {
	slot, ok := s.limiter.Admit(netx.PeerIP(nc))
	if !ok {
		netx.Refuse(nc, s.refuse)
		return
	}
	c := newConn(nc)
	if !s.track(c) {
		slot.Release()
		nc.Close()
		return
	}
	run(func() {
		then := serve(c)
		if then == nil {
			s.forget(c)
			slot.Release()
			s.wg.Done()
			return
		}
		// A proxied session needs no goroutine of its own while it is idle (see Proxy):
		// this worker moves on to the next connection.
		then(func() {
			s.forget(c)
			slot.Release()
			s.wg.Done()
		})
	})
}

// track adds c unless the set is closing; the caller owns a wg slot when it returns true.
func (s *ConnSet[C]) track(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *ConnSet[C]) forget(c C) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// beginClose stops accepting and returns the live connections.
func (s *ConnSet[C]) beginClose() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing = true
		close(s.stop)
	}
	for l := range s.listeners {
		l.Close()
	}
	list := make([]C, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// Close stops accepting, calls kick on every live connection and waits for their goroutines
// to end.
func (s *ConnSet[C]) Close(kick func(C)) {
	for _, c := range s.beginClose() {
		kick(c)
	}
	s.wg.Wait()
}

// Shutdown stops accepting, calls drain on every live connection and waits for them to end.
// When ctx ends first, the connections still live are kicked and ctx's error is returned once
// they are gone.
func (s *ConnSet[C]) Shutdown(ctx context.Context, drain, kick func(C)) error {
	for _, c := range s.beginClose() {
		drain(c)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range s.beginClose() {
		kick(c)
	}
	<-done
	return ctx.Err()
}

// Connection handlers run on workers: goroutines that serve one connection after another.
// A login runs deep (the protocol's parser, the router, the backend dial) and a fresh
// goroutine grows its stack there several times, copying it each time; a worker that served
// a login before already has the stack. A worker with nothing to do for workerIdle ends, so
// a burst of logins leaves no goroutines behind for long.
var workQueue = make(chan func())

const workerIdle = 10 * time.Second

// runWorker runs f on an idle worker, or on a new one when none is waiting.
func runWorker(f func()) {
	select {
	case workQueue <- f:
	default:
		go worker(f)
	}
}

func worker(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // hold nothing of the last connection while waiting
		idle.Reset(workerIdle)
		select {
		case f = <-workQueue:
		case <-idle.C:
			return
		}
	}
}
