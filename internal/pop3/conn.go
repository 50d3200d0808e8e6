package pop3

import (
	"bufio"
	"context"
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
	s  *Server
	br *bufio.Reader

	bad int
	// user is the name given with USER, waiting for PASS.
	user    string
	hasUser bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s}
	s.InitConn(&c.Conn, nc, func(t string) string { return "-ERR " + t })
	return c
}

func (c *conn) setStream(nc net.Conn) {
	c.SetStream(nc)
	c.br = relay.NewReader(nc)
}

func (c *conn) plaintextAllowed() bool {
	return c.s.Env.PlaintextAllowed(c.Peer.Addr(), c.Secured())
}

func (c *conn) trusted() bool { return c.s.Env.IsTrusted(c.Peer.Addr()) }

// capabilities is the pre-login CAPA answer, Dovecot's order.
func (c *conn) capabilities() []string {
	lines := []string{"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"}
	if c.s.cfg.TLS != nil && !c.TLS {
		lines = append(lines, "STLS")
	}
	mechs := c.mechanisms()
	if c.plaintextAllowed() {
		lines = append(lines, "USER")
	}
	return append(lines, strings.TrimSpace("SASL "+strings.Join(mechs, " ")), ".")
}

// mechanisms are the SASL mechanisms offered to this client: PLAIN and LOGIN where plaintext
// is allowed, and the relayed ones the backends offer (login/mechs.go).
func (c *conn) mechanisms() []string {
	var mechs []string
	if c.plaintextAllowed() {
		mechs = append(mechs, "PLAIN", "LOGIN")
	}
	return append(mechs, c.s.Env.RelayMechs(&c.s.mechs, c.plaintextAllowed())...)
}

// preLogin runs the connection up to a successful login, or to its end (nil).
func (c *conn) preLogin() *login.Session {
	return login.PreLogin(&c.Conn, &c.s.cfg.Config, c.s.Env, Service, login.Commands[string]{
		SetStream: c.setStream,
		Greeting: func() []string {
			if c.trusted() {
				return []string{"+OK [XCLIENT] " + c.s.cfg.Greeting}
			}
			return []string{"+OK " + c.s.cfg.Greeting}
		},
		Read: func() (string, error) { return readLine(c.br, c.s.cfg.MaxLineLength) },
		Run: func(line string) (string, *login.Session, bool) {
			cmd := parseCommand(line)
			sess, next := c.dispatch(cmd)
			return cmd.name, sess, next
		},
	})
}

// dispatch runs one pre-login command. It returns a logged-in backend session to relay, or
// whether to go on reading commands.
func (c *conn) dispatch(cmd command) (*login.Session, bool) {
	switch cmd.name {
	case "CAPA":
		return nil, c.Reply(c.capabilities()...) == nil
	case "QUIT":
		_ = c.Reply("+OK Logging out")
		return nil, false
	case "STLS":
		return nil, c.cmdSTLS()
	case "XCLIENT":
		return nil, c.cmdXCLIENT(cmd.args)
	case "USER":
		if !c.plaintextAllowed() {
			return nil, c.Reply(errPlainUser) == nil
		}
		c.user, c.hasUser = cmd.args, true
		return nil, c.Reply("+OK") == nil
	case "PASS":
		return c.cmdPass(cmd.args)
	case "AUTH":
		return c.cmdAuth(cmd.args)
	}
	c.bad++
	if c.Reply("-ERR Unknown command.") != nil {
		return nil, false
	}
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.LastWord("Too many invalid bad commands.")
		return nil, false
	}
	return nil, true
}

// cmdXCLIENT lets a trusted proxy in front of us forward its client's address, session id
// and TTL; anyone else is told politely that nothing changed.
func (c *conn) cmdXCLIENT(args string) bool {
	if !c.trusted() {
		return c.Reply("+OK You are not from trusted IP - ignoring") == nil
	}
	x, ok := login.ParseXCLIENT(args)
	if !ok {
		return c.Reply("-ERR Invalid parameters") == nil
	}
	x.Apply(&c.Remote, &c.SessionID, &c.TTL, &c.Forward)
	return c.Reply("+OK Updated") == nil
}

func (c *conn) cmdSTLS() bool {
	switch {
	case c.TLS:
		return c.Reply("-ERR TLS is already active.") == nil
	case c.s.cfg.TLS == nil:
		return c.Reply("-ERR TLS support isn't enabled.") == nil
	}
	if c.Reply("+OK Begin TLS negotiation now.") != nil {
		return false
	}
	// A new reader drops anything the client pipelined in plaintext after STLS: it must not
	// be taken as said under TLS. The same goes for a USER given before.
	if !c.StartTLS(c.s.cfg.TLS, "STLS", c.setStream) {
		return false
	}
	c.user, c.hasUser = "", false
	return true
}

// Reply texts of Dovecot 2.3's pop3-login and its proxy (checked against 2.3.19).
const (
	errAuthFailed  = "-ERR [AUTH] Authentication failed."
	errUnavailable = "-ERR [SYS/TEMP] Account is temporarily unavailable."
	errConfig      = "-ERR Account is temporarily unavailable."
	errPlainUser   = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
	errPlainAuth   = "-ERR [AUTH] Plaintext authentication disabled."
	errMechanism   = "-ERR [AUTH] Unsupported authentication mechanism."
	errBase64      = "-ERR [AUTH] Invalid base64 in response"
	errAborted     = "-ERR Authentication aborted by client."
	errNoUser      = "-ERR No username given."
)

func (c *conn) cmdPass(pass string) (*login.Session, bool) {
	if !c.plaintextAllowed() {
		return nil, c.Reply(errPlainUser) == nil
	}
	if !c.hasUser {
		return nil, c.Reply(errNoUser) == nil
	}
	// Every PASS uses up the USER before it, whatever the outcome.
	user := c.user
	c.user, c.hasUser = "", false
	if user == "" {
		// "USER" alone is accepted, as by Dovecot, but can never log in: fail it here
		// rather than route an empty name.
		c.s.Env.FailedAttempt(c.Remote.Addr())
		return nil, c.Reply(errAuthFailed) == nil
	}
	return c.login(login.Creds{Mech: "PLAIN", User: user, Pass: pass})
}

// cmdAuth handles "AUTH" (list mechanisms) and "AUTH <mech> [initial response]".
func (c *conn) cmdAuth(args string) (*login.Session, bool) {
	if args == "" {
		return nil, c.Reply(append(append([]string{"+OK"}, c.mechanisms()...), ".")...) == nil
	}
	mech, irText, hasIR := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	switch c.s.Env.CheckMech(&c.s.mechs, mech, c.plaintextAllowed()) {
	case login.MechUnsupported:
		return nil, c.Reply(errMechanism) == nil
	case login.MechPlaintext:
		return nil, c.Reply(errPlainAuth) == nil
	}
	var ir *string
	if hasIR {
		ir = &irText
	}
	cr, ok, next := c.Authenticate(c.s.Env, mech, ir, login.SASL{
		Challenge: func(b64 string) error { return c.Reply("+ " + b64) },
		Read: func() (string, string, bool) {
			line, err := readLine(c.br, max(c.s.cfg.MaxLineLength, login.MaxSASLResponse))
			if err != nil {
				c.ReadFailed(err)
				return "", "", false
			}
			return line, "", true
		},
		Aborted: errAborted, BadBase64: errBase64, AuthFailed: errAuthFailed,
	})
	if !ok {
		return nil, next
	}
	return c.login(cr)
}

// login runs the login pipeline (see login.Login) and, on success, returns the logged-in
// backend; every failure has been answered and the client may retry.
func (c *conn) login(cr login.Creds) (*login.Session, bool) {
	bs, next := c.s.Login(&c.Conn, cr, failTexts(), c.Answer,
		func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*login.Session, login.Result) {
			if cr.Relay != nil {
				return c.relayDialogue(ctx, nc, br, dest, cr.Relay)
			}
			return c.backendDialogue(ctx, nc, br, dest, cr)
		})
	if bs != nil {
		bs.Client, c.br = c.br, nil // the session takes the client's pipelined bytes
	}
	return bs, next
}

// failTexts are pop3-login's answers to failed logins.
func failTexts() *login.Texts {
	return &login.Texts{
		AuthFailed:  errAuthFailed,
		Config:      errConfig,
		Unavailable: errUnavailable,
		TempFail:    func(detail string) string { return "-ERR [SYS/TEMP] " + detail },
		UserIPLimit: func(limit int) string {
			return "-ERR [IN-USE] Maximum number of connections from user+IP exceeded " +
				"(mail_max_userip_connections=" + strconv.Itoa(limit) + ")"
		},
		// a passdb's nologin: [AUTH] unless its reason brings its own code, as pop3-login says
		NoLogin: func(reason string) string {
			if strings.HasPrefix(reason, "[") {
				return "-ERR " + reason
			}
			return "-ERR [AUTH] " + reason
		},
	}
}
