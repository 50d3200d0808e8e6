package pop3

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/login"
)

type connState int

const (
	statePreLogin connState = iota
	stateProxying
	stateClosed
)

// conn is one client connection, from greeting to the end of its proxied session.
type conn struct {
	s   *Server
	raw net.Conn // the accepted TCP connection
	nc  net.Conn // raw, or TLS on top of it
	br  *bufio.Reader
	bw  *bufio.Writer
	log *slog.Logger

	tls bool
	// peer is the address the connection really comes from; remote and local start equal to
	// the socket's and may be overridden by a trusted proxy's XCLIENT.
	peer          netip.AddrPort
	remote, local netip.AddrPort
	sessionID     string
	ttl           int
	bad           int
	// user is the name given with USER, waiting for PASS.
	user    string
	hasUser bool

	wmu sync.Mutex // serialises writes to the client before login

	mu         sync.Mutex
	state      connState
	backend    net.Conn
	kickReason string
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, raw: nc, nc: nc, ttl: login.ProxyTTL, sessionID: login.NewSessionID()}
	c.remote = login.AddrPort(nc.RemoteAddr())
	if s.remoteAddr != nil {
		c.remote = s.remoteAddr(nc)
	}
	c.peer = c.remote
	c.local = login.AddrPort(nc.LocalAddr())
	c.log = s.log.With("session", c.sessionID, "rip", c.remote.Addr().String())
	return c
}

func (c *conn) setStream(nc net.Conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc = nc
	c.bw = bufio.NewWriter(nc)
	c.br = bufio.NewReaderSize(nc, 4096)
}

// reply writes lines to the client and flushes.
func (c *conn) reply(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	return c.bw.Flush()
}

func (c *conn) plaintextAllowed() bool {
	return c.s.env.PlaintextAllowed(c.peer.Addr(), c.tls)
}

func (c *conn) trusted() bool { return c.s.env.IsTrusted(c.peer.Addr()) }

// capabilities is the pre-login CAPA answer, Dovecot's order.
func (c *conn) capabilities() []string {
	lines := []string{"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"}
	if c.s.cfg.TLS != nil && !c.tls {
		lines = append(lines, "STLS")
	}
	if c.plaintextAllowed() {
		lines = append(lines, "USER", "SASL PLAIN LOGIN")
	} else {
		lines = append(lines, "SASL")
	}
	return append(lines, ".")
}

// serve runs the pre-login dialogue; after a login it returns the proxied
// session as a continuation for a fresh goroutine (see login.ConnSet).
func (c *conn) serve() func() {
	sess := c.preLogin()
	if sess == nil {
		c.finish()
		return nil
	}
	return func() {
		defer c.finish()
		c.proxy(sess)
	}
}

// preLogin runs the connection up to a successful login, or to its end (nil).
func (c *conn) preLogin() *backendSession {
	_ = c.raw.SetDeadline(time.Now().Add(c.s.cfg.LoginTimeout))
	if c.s.cfg.ImplicitTLS {
		tc := tls.Server(c.raw, c.s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return nil
		}
		c.tls = true
		c.setStream(tc)
	} else {
		c.setStream(c.raw)
	}
	greeting := "+OK " + c.s.cfg.Greeting
	if c.trusted() {
		greeting = "+OK [XCLIENT] " + c.s.cfg.Greeting
	}
	if c.reply(greeting) != nil {
		return nil
	}
	for n := 1; ; n++ {
		line, err := readLine(c.br, c.s.cfg.MaxLineLength)
		if err != nil {
			c.readFailed(err)
			return nil
		}
		// A client that talks without ever logging in only costs us: the login timeout
		// bounds its time, this bounds its work.
		if n > c.s.cfg.MaxCommands {
			c.lastWord("Too many commands before login.")
			return nil
		}
		cmd := parseCommand(line)
		start := time.Now()
		sess, next := c.dispatch(cmd)
		c.s.env.Stats.Command(Service, cmd.name, time.Since(start))
		if sess != nil {
			return sess
		}
		if !next {
			return nil
		}
	}
}

// readFailed says goodbye where the protocol has words for it.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		c.lastWord(err.Error())
	case errors.As(err, &ne) && ne.Timeout() && c.current() == statePreLogin:
		c.lastWord("Disconnected for inactivity.")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// lastWord sends a final -ERR line, with a fresh write deadline since the login one may be over.
func (c *conn) lastWord(text string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.reply("-ERR " + text)
}

func (c *conn) current() connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// finish closes everything the connection still holds.
func (c *conn) finish() {
	c.mu.Lock()
	c.state = stateClosed
	be := c.backend
	c.mu.Unlock()
	if be != nil {
		be.Close()
	}
	c.nc.Close()
	c.raw.Close()
}

// closePreLogin ends a connection that has not logged in yet (server shutdown). A proxied
// session is left alone.
func (c *conn) closePreLogin(text string) {
	c.mu.Lock()
	if c.state != statePreLogin {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.mu.Unlock()
	// The connection's own goroutine may be blocked writing; then it does not get the line.
	if c.wmu.TryLock() {
		if c.bw != nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			c.bw.WriteString("-ERR " + text + "\r\n")
			_ = c.bw.Flush()
		}
		c.wmu.Unlock()
	}
	c.raw.Close()
}

// kick ends the connection whatever its state. A proxied client gets "-ERR <reason>" once the
// relay has stopped (see proxy): usher's deviation from Dovecot, which just closes.
func (c *conn) kick(reason string) {
	c.mu.Lock()
	st, be := c.state, c.backend
	if c.kickReason == "" {
		c.kickReason = reason
	}
	c.mu.Unlock()
	if st == stateProxying && be != nil {
		be.Close()
		return
	}
	c.closePreLogin(reason)
	c.raw.Close()
}

// dispatch runs one pre-login command. It returns a logged-in backend session to relay, or
// whether to go on reading commands.
func (c *conn) dispatch(cmd command) (*backendSession, bool) {
	switch cmd.name {
	case "CAPA":
		return nil, c.reply(c.capabilities()...) == nil
	case "QUIT":
		_ = c.reply("+OK Logging out")
		return nil, false
	case "STLS":
		return nil, c.cmdSTLS()
	case "XCLIENT":
		return nil, c.cmdXCLIENT(cmd.args)
	case "USER":
		if !c.plaintextAllowed() {
			return nil, c.reply(errPlainUser) == nil
		}
		c.user, c.hasUser = cmd.args, true
		return nil, c.reply("+OK") == nil
	case "PASS":
		return c.cmdPass(cmd.args)
	case "AUTH":
		return c.cmdAuth(cmd.args)
	}
	c.bad++
	if c.reply("-ERR Unknown command.") != nil {
		return nil, false
	}
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.lastWord("Too many invalid bad commands.")
		return nil, false
	}
	return nil, true
}

// cmdXCLIENT lets a trusted proxy in front of us forward its client's address, session id
// and TTL; anyone else is told politely that nothing changed.
func (c *conn) cmdXCLIENT(args string) bool {
	if !c.trusted() {
		return c.reply("+OK You are not from trusted IP - ignoring") == nil
	}
	x, ok := login.ParseXCLIENT(args)
	if !ok {
		return c.reply("-ERR Invalid parameters") == nil
	}
	x.Apply(&c.remote, &c.sessionID, &c.ttl)
	return c.reply("+OK Updated") == nil
}

func (c *conn) cmdSTLS() bool {
	switch {
	case c.tls:
		return c.reply("-ERR TLS is already active.") == nil
	case c.s.cfg.TLS == nil:
		return c.reply("-ERR TLS support isn't enabled.") == nil
	}
	if c.reply("+OK Begin TLS negotiation now.") != nil {
		return false
	}
	tc := tls.Server(c.raw, c.s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STLS handshake failed", "err", err)
		return false
	}
	c.tls = true
	// A new reader drops anything the client pipelined in plaintext after STLS: it must not
	// be taken as said under TLS. The same goes for a USER given before.
	c.setStream(tc)
	c.user, c.hasUser = "", false
	return true
}
