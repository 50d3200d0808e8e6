package imap

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/relay"
)

// conn is one client connection, from greeting to the end of its proxied session.
type conn struct {
	login.Conn
	s   *Server
	rd  *reader
	bad int
	// capsSeen: the client asked CAPABILITY itself, so after login it gets the backend's
	// capabilities as an untagged line rather than a response code (as Dovecot does).
	capsSeen bool
	// clientID is the client's own ID parameters, rendered for the backend's ID (imap_id_retain).
	clientID string
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s}
	s.InitConn(&c.Conn, nc, func(t string) string { return "* BYE " + t })
	return c
}

func (c *conn) setStream(nc net.Conn) {
	c.SetStream(nc)
	c.rd = &reader{
		br:         relay.NewReader(nc),
		maxCommand: c.s.cfg.MaxLineLength,
		maxLiteral: c.s.cfg.MaxLiteral,
		cont:       func() error { return c.Reply("+ OK") },
	}
}

// capabilities is the pre-login list, Dovecot's order.
func (c *conn) capabilities() string {
	caps := "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
	if c.s.cfg.TLS != nil && !c.TLS {
		caps += " STARTTLS"
	}
	if c.plaintextAllowed() {
		caps += " AUTH=PLAIN AUTH=LOGIN"
	} else {
		caps += " LOGINDISABLED"
	}
	for _, m := range c.relayMechs() {
		caps += " AUTH=" + m
	}
	return caps
}

// relayMechs are the relayed SASL mechanisms offered to this client (login/mechs.go).
func (c *conn) relayMechs() []string {
	return c.s.Env.RelayMechs(&c.s.mechs, c.plaintextAllowed())
}

func (c *conn) plaintextAllowed() bool {
	return c.s.Env.PlaintextAllowed(c.Peer.Addr(), c.Secured())
}

// preLogin runs the connection up to a successful login, or to its end (nil).
func (c *conn) preLogin() *login.Session {
	return login.PreLogin(&c.Conn, &c.s.cfg.Config, c.s.Env, Service, login.Commands[[]piece]{
		SetStream: c.setStream,
		Greeting:  func() []string { return []string{"* OK [CAPABILITY " + c.capabilities() + "] " + c.s.cfg.Greeting} },
		Read:      func() ([]piece, error) { return c.rd.readCommand() },
		Run: func(pieces []piece) (string, *login.Session, bool) {
			cmd, err := parseCommand(pieces)
			if err != nil {
				var se *syntaxError
				errors.As(err, &se)
				return "", nil, c.badCommand(cmd.tag, se.text)
			}
			sess, next := c.dispatch(cmd)
			return cmd.name, sess, next
		},
	})
}

// badCommand answers a bad command; false when the client has used up its allowance.
func (c *conn) badCommand(tag, text string) bool {
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.LastWord("Too many invalid IMAP commands.")
		return false
	}
	return c.Reply(tag+" BAD "+text) == nil
}

// dispatch runs one pre-login command. It returns a logged-in backend session to relay, or
// whether to go on reading commands.
func (c *conn) dispatch(cmd *command) (*login.Session, bool) {
	noArgs := len(cmd.args) == 0
	switch {
	case cmd.name == "CAPABILITY" && noArgs:
		c.capsSeen = true
		return nil, c.Reply("* CAPABILITY "+c.capabilities(),
			cmd.tag+" OK Pre-login capabilities listed, post-login capabilities have more.") == nil
	case cmd.name == "NOOP" && noArgs:
		return nil, c.Reply(cmd.tag+" OK NOOP completed.") == nil
	case cmd.name == "LOGOUT" && noArgs:
		_ = c.Reply("* BYE Logging out", cmd.tag+" OK Logout completed.")
		return nil, false
	case cmd.name == "ENABLE" && !noArgs:
		return nil, c.Reply("* ENABLED", cmd.tag+" OK ENABLE ignored in non-authenticated state.") == nil
	case cmd.name == "ID" && len(cmd.args) == 1:
		if !c.cmdID(cmd.args[0]) {
			break
		}
		return nil, c.Reply(`* ID ("name" "Dovecot")`, cmd.tag+" OK ID completed.") == nil
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
	trusted := c.s.Env.IsTrusted(c.Peer.Addr())
	o := idOverride{rip: c.Remote.Addr(), rport: c.Remote.Port(), lip: c.Local.Addr(), lport: c.Local.Port()}
	c.clientID = ""
	for i := 0; i < len(a.list); i += 2 {
		k, v := a.list[i], a.list[i+1]
		if k.kind == argList || v.kind == argList {
			return false
		}
		key := strings.ToLower(k.s)
		if c.s.cfg.IDRetain && !reservedIDKey(key) {
			c.retainID(k.s, v)
		}
		if !trusted || v.isNIL() {
			continue
		}
		if name, ok := strings.CutPrefix(key, "x-forward-"); ok && name != "" {
			c.Forward = login.MergeForward(c.Forward, []string{k.s[len("x-forward-"):] + "=" + v.s})
			continue
		}
		c.trustedID(key, v.s, &o)
	}
	c.Remote, c.Local = netip.AddrPortFrom(o.rip, o.rport), netip.AddrPortFrom(o.lip, o.lport)
	return true
}

// idOverride are the client's (r) and local (l) address as a trusted ID states them.
type idOverride struct {
	rip, lip     netip.Addr
	rport, lport uint16
}

// trustedID takes over one ID parameter of a trusted client (another proxy): the addresses
// into o, the TTL and session id into c. Values that do not parse are ignored.
func (c *conn) trustedID(key, val string, o *idOverride) {
	switch key {
	case "x-originating-ip":
		if ip, err := netip.ParseAddr(val); err == nil {
			o.rip = ip.Unmap()
		}
	case "x-originating-port":
		if p, ok := parsePort(val); ok {
			o.rport = p
		}
	case "x-connected-ip":
		if ip, err := netip.ParseAddr(val); err == nil {
			o.lip = ip.Unmap()
		}
	case "x-connected-port":
		if p, ok := parsePort(val); ok {
			o.lport = p
		}
	case "x-proxy-ttl":
		if p, ok := parsePort(val); ok {
			c.TTL = int(p)
		}
	case "x-session-id", "x-session-ext-id":
		if login.ValidSessionID(val) {
			c.SessionID = val
		}
	}
}

// reservedIDKey: the ID keys a proxy sets itself, never passed on as the client's own.
func reservedIDKey(key string) bool {
	switch key {
	case "x-originating-ip", "x-originating-port", "x-connected-ip", "x-connected-port",
		"x-proxy-ttl", "x-session-id", "x-session-ext-id":
		return true
	}
	return strings.HasPrefix(key, "x-forward-")
}

// maxClientID bounds the retained ID parameters (Dovecot's LOGIN_MAX_CLIENT_ID_LEN): a pair
// that would take them to this length is dropped, except the first.
const maxClientID = 256

// retainID adds one of the client's ID parameters to what the backend's ID will carry.
// A value that cannot be quoted is left out rather than sent as a literal.
func (c *conn) retainID(k string, v arg) {
	val := "NIL"
	if !v.isNIL() {
		if !quotable(v.s) {
			return
		}
		val = quote(v.s)
	}
	if !quotable(k) {
		return
	}
	pair := quote(k) + " " + val
	if c.clientID != "" {
		if len(c.clientID)+1+len(pair) >= maxClientID {
			return
		}
		c.clientID += " "
	}
	c.clientID += pair
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
	case c.TLS:
		return c.Reply(tag+" BAD TLS is already active.") == nil
	case c.s.cfg.TLS == nil:
		return c.Reply(tag+" BAD TLS support isn't enabled.") == nil
	}
	if c.Reply(tag+" OK Begin TLS negotiation now.") != nil {
		return false
	}
	// A new reader drops anything the client pipelined in plaintext after STARTTLS: it must
	// not be taken as said under TLS.
	if !c.StartTLS(c.s.cfg.TLS, "STARTTLS", c.setStream) {
		return false
	}
	return true
}

// Reply texts of Dovecot 2.3's imap-login.
const (
	noAuthFailed   = "NO [AUTHENTICATIONFAILED] Authentication failed."
	noUnavailable  = "NO [UNAVAILABLE] Account is temporarily unavailable."
	noServerBug    = "NO [SERVERBUG] Account is temporarily unavailable."
	noPlainLogin   = "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
	noPlainAuth    = "NO [PRIVACYREQUIRED] Plaintext authentication disabled."
	noMechanism    = "NO [ALERT] Unsupported authentication mechanism."
	noBase64       = "NO [ALERT] Invalid base64 in response"
	badAborted     = "BAD Authentication aborted by client."
	byeExposedPass = "* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed."
)

func (c *conn) cmdLogin(tag, user, pass string) (*login.Session, bool) {
	if !c.plaintextAllowed() {
		return nil, c.Reply(byeExposedPass, tag+" "+noPlainLogin) == nil
	}
	return c.login(tag, login.Creds{Mech: "LOGIN", User: user, Pass: pass})
}

func (c *conn) cmdAuthenticate(cmd *command) (*login.Session, bool) {
	mech, ok := cmd.args[0].str()
	if !ok {
		return nil, c.badCommand(cmd.tag, badGeneric)
	}
	mech = strings.ToUpper(mech)
	switch c.s.Env.CheckMech(&c.s.mechs, mech, c.plaintextAllowed()) {
	case login.MechUnsupported:
		return nil, c.Reply(cmd.tag+" "+noMechanism) == nil
	case login.MechPlaintext:
		return nil, c.Reply(cmd.tag+" "+noPlainAuth) == nil
	}
	var ir *string
	if len(cmd.args) == 2 {
		s, ok := cmd.args[1].str()
		if !ok {
			return nil, c.badCommand(cmd.tag, badGeneric)
		}
		ir = &s
	}
	cr, ok, next := c.Authenticate(c.s.Env, mech, ir, login.SASL{
		Challenge: func(b64 string) error { return c.Reply("+ " + b64) },
		Read: func() (string, string, bool) {
			line, err := c.rd.readLine(c.s.cfg.MaxLineLength)
			if err != nil {
				c.ReadFailed(err)
				return "", "", false
			}
			return line, "", true
		},
		Aborted: cmd.tag + " " + badAborted, BadBase64: cmd.tag + " " + noBase64, AuthFailed: cmd.tag + " " + noAuthFailed,
	})
	if !ok {
		return nil, next
	}
	return c.login(cmd.tag, cr)
}

// login runs the login pipeline (see login.Login) and, on success, returns the logged-in
// backend; every failure has been answered and the client may retry.
func (c *conn) login(tag string, cr login.Creds) (*login.Session, bool) {
	bs, next := c.s.Login(&c.Conn, cr, failTexts(), func(line string) error { return c.Reply(tag + " " + line) },
		func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*login.Session, login.Result) {
			if cr.Relay != nil {
				return c.relayDialogue(ctx, nc, br, dest, tag, cr.Relay)
			}
			return c.backendDialogue(ctx, nc, br, dest, tag, cr)
		})
	if bs != nil {
		bs.Client, c.rd = c.rd.br, nil // the session takes the client's pipelined bytes
	}
	return bs, next
}

// failTexts are imap-login's answers to failed logins (after the tag).
func failTexts() *login.Texts {
	return &login.Texts{
		AuthFailed:  noAuthFailed,
		Config:      noServerBug,
		Unavailable: noUnavailable,
		TempFail:    func(detail string) string { return "NO [UNAVAILABLE] " + detail },
		UserIPLimit: func(limit int) string {
			return "NO [LIMIT] Maximum number of connections from user+IP exceeded " +
				"(mail_max_userip_connections=" + strconv.Itoa(limit) + ")"
		},
		// a passdb's nologin, with its reason or Dovecot's words for none
		NoLogin: func(reason string) string { return "NO [CONTACTADMIN] " + reason },
	}
}

// loggedInReply tells the client it is logged in, with the backend's capabilities.
func (c *conn) loggedInReply(tag, caps, text string) []string {
	if caps == "" {
		return []string{tag + " OK " + text}
	}
	if c.capsSeen {
		return []string{"* CAPABILITY " + caps, tag + " OK " + text}
	}
	return []string{tag + " OK [CAPABILITY " + caps + "] " + text}
}
