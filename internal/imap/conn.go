package imap

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
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
	rd  *reader
	bw  *bufio.Writer
	log *slog.Logger

	tls bool
	// peer is the address the connection really comes from; remote and local start equal to
	// the socket's and may be overridden by a trusted proxy's ID.
	peer          netip.AddrPort
	remote, local netip.AddrPort
	sessionID     string
	ttl           int
	bad           int
	// capsSeen: the client asked CAPABILITY itself, so after login it gets the backend's
	// capabilities as an untagged line rather than a response code (as Dovecot does).
	capsSeen bool

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
	c.nc = nc
	c.bw = bufio.NewWriter(nc)
	c.rd = &reader{
		br:         bufio.NewReaderSize(nc, 4096),
		maxCommand: c.s.cfg.MaxLineLength,
		maxLiteral: c.s.cfg.MaxLiteral,
		cont:       func() error { return c.reply("+ OK") },
	}
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

// capabilities is the pre-login list, Dovecot's order.
func (c *conn) capabilities() string {
	caps := "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
	if c.s.cfg.TLS != nil && !c.tls {
		caps += " STARTTLS"
	}
	if c.plaintextAllowed() {
		return caps + " AUTH=PLAIN AUTH=LOGIN"
	}
	return caps + " LOGINDISABLED"
}

func (c *conn) plaintextAllowed() bool {
	return c.s.env.PlaintextAllowed(c.peer.Addr(), c.tls)
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
	if c.reply("* OK [CAPABILITY "+c.capabilities()+"] "+c.s.cfg.Greeting) != nil {
		return nil
	}
	for n := 1; ; n++ {
		pieces, err := c.rd.readCommand()
		if err != nil {
			c.readFailed(err)
			return nil
		}
		// A client that talks without ever logging in only costs us: the
		// login timeout bounds its time, this bounds its work.
		if n > c.s.cfg.MaxCommands {
			c.bye("Too many commands before login.")
			return nil
		}
		cmd, err := parseCommand(pieces)
		if err != nil {
			var se *syntaxError
			errors.As(err, &se)
			if !c.badCommand(cmd.tag, se.text) {
				return nil
			}
			continue
		}
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
	var fe *fatalError
	var ne net.Error
	switch {
	case errors.As(err, &fe):
		c.bye(fe.text)
	case errors.As(err, &ne) && ne.Timeout() && c.current() == statePreLogin:
		c.bye("Disconnected for inactivity.")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// bye sends a last untagged BYE, with a fresh write deadline since the login one may be over.
func (c *conn) bye(text string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.reply("* BYE " + text)
}

// badCommand answers a bad command; false when the client has used up its allowance.
func (c *conn) badCommand(tag, text string) bool {
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.bye("Too many invalid IMAP commands.")
		return false
	}
	return c.reply(tag+" BAD "+text) == nil
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
	// The connection's own goroutine may be blocked writing; then it does not get the BYE.
	if c.wmu.TryLock() {
		if c.bw != nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			c.bw.WriteString("* BYE " + text + "\r\n")
			_ = c.bw.Flush()
		}
		c.wmu.Unlock()
	}
	c.raw.Close()
}

// kick ends the connection whatever its state. A proxied client gets "* BYE <reason>" once the
// relay has stopped (see proxy).
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
func (c *conn) dispatch(cmd *command) (*backendSession, bool) {
	noArgs := len(cmd.args) == 0
	switch {
	case cmd.name == "CAPABILITY" && noArgs:
		c.capsSeen = true
		return nil, c.reply("* CAPABILITY "+c.capabilities(),
			cmd.tag+" OK Pre-login capabilities listed, post-login capabilities have more.") == nil
	case cmd.name == "NOOP" && noArgs:
		return nil, c.reply(cmd.tag+" OK NOOP completed.") == nil
	case cmd.name == "LOGOUT" && noArgs:
		_ = c.reply("* BYE Logging out", cmd.tag+" OK Logout completed.")
		return nil, false
	case cmd.name == "ENABLE" && !noArgs:
		return nil, c.reply("* ENABLED", cmd.tag+" OK ENABLE ignored in non-authenticated state.") == nil
	case cmd.name == "ID" && len(cmd.args) == 1:
		if !c.cmdID(cmd.args[0]) {
			break
		}
		return nil, c.reply(`* ID ("name" "Dovecot")`, cmd.tag+" OK ID completed.") == nil
	case cmd.name == "STARTTLS" && noArgs:
		return nil, c.cmdStartTLS(cmd.tag)
	case cmd.name == "LOGIN" && len(cmd.args) == 2:
		user, ok1 := cmd.args[0].str()
		pass, ok2 := cmd.args[1].str()
		if ok1 && ok2 {
			return c.cmdLogin(cmd.tag, user, pass)
		}
	case cmd.name == "AUTHENTICATE" && (len(cmd.args) == 1 || len(cmd.args) == 2):
		return c.cmdAuthenticate(cmd)
	}
	return nil, c.badCommand(cmd.tag, badGeneric)
}

// cmdID validates "ID NIL" / "ID (k v ...)" and, for a trusted client (another proxy), takes
// over the forwarded client address, session id and TTL.
func (c *conn) cmdID(a arg) bool {
	if a.isNIL() {
		return true
	}
	if a.kind != argList || len(a.list)%2 != 0 || len(a.list) > 60 {
		return false
	}
	trusted := c.s.env.IsTrusted(c.peer.Addr())
	rip, rport := c.remote.Addr(), c.remote.Port()
	lip, lport := c.local.Addr(), c.local.Port()
	for i := 0; i < len(a.list); i += 2 {
		k, v := a.list[i], a.list[i+1]
		if k.kind == argList || v.kind == argList {
			return false
		}
		if !trusted || v.isNIL() {
			continue
		}
		switch strings.ToLower(k.s) {
		case "x-originating-ip":
			if ip, err := netip.ParseAddr(v.s); err == nil {
				rip = ip.Unmap()
			}
		case "x-originating-port":
			if p, ok := parsePort(v.s); ok {
				rport = p
			}
		case "x-connected-ip":
			if ip, err := netip.ParseAddr(v.s); err == nil {
				lip = ip.Unmap()
			}
		case "x-connected-port":
			if p, ok := parsePort(v.s); ok {
				lport = p
			}
		case "x-proxy-ttl":
			if p, ok := parsePort(v.s); ok {
				c.ttl = int(p)
			}
		case "x-session-id", "x-session-ext-id":
			if v.s != "" && len(v.s) <= 64 {
				c.sessionID = v.s
			}
		}
	}
	c.remote, c.local = netip.AddrPortFrom(rip, rport), netip.AddrPortFrom(lip, lport)
	return true
}

func parsePort(s string) (uint16, bool) {
	n := 0
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return uint16(n), n <= 65535
}

func (c *conn) cmdStartTLS(tag string) bool {
	switch {
	case c.tls:
		return c.reply(tag+" BAD TLS is already active.") == nil
	case c.s.cfg.TLS == nil:
		return c.reply(tag+" BAD TLS support isn't enabled.") == nil
	}
	if c.reply(tag+" OK Begin TLS negotiation now.") != nil {
		return false
	}
	tc := tls.Server(c.raw, c.s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		return false
	}
	c.tls = true
	// A new reader drops anything the client pipelined in plaintext after STARTTLS: it must
	// not be taken as said under TLS.
	c.setStream(tc)
	return true
}
