package sieve

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

// Texts of Dovecot 2.3's managesieve-login (checked against 2.3.19 / Pigeonhole 0.5.19).
const (
	noGeneric = `NO "Error in MANAGESIEVE command received by server."`
	byeBad    = `BYE "Too many invalid MANAGESIEVE commands."`
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
	// the socket's and may be overridden by a trusted proxy's XCLIENT.
	peer          netip.AddrPort
	remote, local netip.AddrPort
	sessionID     string
	ttl           int
	bad           int

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
	c.rd = &reader{br: bufio.NewReaderSize(nc, 4096), maxCommand: c.s.cfg.MaxLineLength}
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

// capabilities is the pre-login capability list, Dovecot's order, closed by OK text.
func (c *conn) capabilities(text string) []string {
	cfg := c.s.cfg
	lines := []string{
		`"IMPLEMENTATION" ` + quote(cfg.Implementation),
		`"SIEVE" ` + quote(cfg.SieveExtensions),
		`"NOTIFY" ` + quote(cfg.NotifyMethods),
	}
	if c.plaintextAllowed() {
		lines = append(lines, `"SASL" "PLAIN LOGIN"`)
	} else {
		lines = append(lines, `"SASL" ""`)
	}
	if cfg.TLS != nil && !c.tls {
		lines = append(lines, `"STARTTLS"`)
	}
	lines = append(lines, `"VERSION" "1.0"`)
	if c.trusted() {
		lines = append(lines, `"XCLIENT"`)
	}
	return append(lines, "OK "+quote(text))
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
	if c.reply(c.capabilities(c.s.cfg.Greeting)...) != nil {
		return nil
	}
	for n := 1; ; n++ {
		pieces, err := c.rd.readCommand()
		if err != nil {
			c.readFailed(err)
			return nil
		}
		// A client that talks without ever logging in only costs us: the login timeout
		// bounds its time, this bounds its work.
		if n > c.s.cfg.MaxCommands {
			c.bye("Too many commands before login.")
			return nil
		}
		cmd, err := parseCommand(pieces)
		if err != nil {
			if !c.badCommand() {
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
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		c.bye(err.Error())
	case errors.As(err, &ne) && ne.Timeout() && c.current() == statePreLogin:
		c.bye("Disconnected for inactivity.")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// bye sends a last BYE, with a fresh write deadline since the login one may be over.
func (c *conn) bye(text string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.reply("BYE " + quote(text))
}

// badCommand answers a bad command; false when the client has used up its allowance (the
// last one gets only the BYE, as in Dovecot).
func (c *conn) badCommand() bool {
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.reply(byeBad)
		return false
	}
	return c.reply(noGeneric) == nil
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
			c.bw.WriteString("BYE " + quote(text) + "\r\n")
			_ = c.bw.Flush()
		}
		c.wmu.Unlock()
	}
	c.raw.Close()
}

// kick ends the connection whatever its state. A proxied client gets a BYE with the reason
// once the relay has stopped (see proxy): usher's deviation from Dovecot, which just closes.
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
		return nil, c.reply(c.capabilities("Capability completed.")...) == nil
	case cmd.name == "NOOP" && noArgs:
		return nil, c.reply(`OK "NOOP Completed"`) == nil
	case cmd.name == "NOOP" && len(cmd.args) == 1 && cmd.args[0].string:
		return nil, c.reply(`OK (TAG `+quote(cmd.args[0].s)+`) "Done"`) == nil
	case cmd.name == "LOGOUT" && noArgs:
		_ = c.reply(`OK "Logout completed."`)
		return nil, false
	case cmd.name == "STARTTLS" && noArgs:
		return nil, c.cmdStartTLS()
	case cmd.name == "XCLIENT":
		if !c.trusted() {
			return nil, c.reply(`NO "You are not from trusted IP"`) == nil
		}
		if c.cmdXCLIENT(cmd.args) {
			return nil, c.reply(`OK "Updated"`) == nil
		}
	case cmd.name == "AUTHENTICATE" && (len(cmd.args) == 1 || len(cmd.args) == 2) && cmd.args[0].string:
		return c.cmdAuthenticate(cmd)
	}
	return nil, c.badCommand()
}

// cmdXCLIENT takes over the forwarded client address, session id and TTL from a trusted
// proxy in front of us; false on malformed values.
func (c *conn) cmdXCLIENT(args []token) bool {
	words := make([]string, 0, len(args))
	for _, a := range args {
		if a.string {
			return false
		}
		words = append(words, a.s)
	}
	x, ok := login.ParseXCLIENT(strings.Join(words, " "))
	if !ok {
		return false
	}
	x.Apply(&c.remote, &c.sessionID, &c.ttl)
	return true
}

func (c *conn) cmdStartTLS() bool {
	switch {
	case c.tls:
		return c.reply(`NO "TLS is already active."`) == nil
	case c.s.cfg.TLS == nil:
		return c.reply(`NO "TLS support isn't enabled."`) == nil
	}
	if c.reply(`OK "Begin TLS negotiation now."`) != nil {
		return false
	}
	tc := tls.Server(c.raw, c.s.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		return false
	}
	c.tls = true
	// A new reader drops anything the client pipelined in plaintext after STARTTLS: it must
	// not be taken as said under TLS. RFC 5804 wants the capabilities again under TLS.
	c.setStream(tc)
	return c.reply(c.capabilities("TLS negotiation successful.")...) == nil
}
