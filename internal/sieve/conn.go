package sieve

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/relay"
)

// Texts of Dovecot 2.3's managesieve-login (checked against 2.3.19 / Pigeonhole 0.5.19).
const (
	noGeneric = `NO "Error in MANAGESIEVE command received by server."`
	byeBad    = `BYE "Too many invalid MANAGESIEVE commands."`
)

// conn is one client connection, from greeting to the end of its proxied session.
type conn struct {
	login.Conn
	s   *Server
	rd  *reader
	bad int
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s}
	s.InitConn(&c.Conn, nc, func(t string) string { return "BYE " + quote(t) })
	return c
}

func (c *conn) setStream(nc net.Conn) {
	c.SetStream(nc)
	c.rd = &reader{br: relay.NewReader(nc), maxCommand: c.s.cfg.MaxLineLength}
}

func (c *conn) plaintextAllowed() bool {
	return c.s.Env.PlaintextAllowed(c.Peer.Addr(), c.Secured())
}

func (c *conn) trusted() bool { return c.s.Env.IsTrusted(c.Peer.Addr()) }

// capabilities is the pre-login capability list, Dovecot's order, closed by OK text.
func (c *conn) capabilities(text string) []string {
	cfg := c.s.cfg
	lines := []string{
		`"IMPLEMENTATION" ` + quote(cfg.Implementation),
		`"SIEVE" ` + quote(cfg.SieveExtensions),
		`"NOTIFY" ` + quote(cfg.NotifyMethods),
	}
	var mechs []string
	if c.plaintextAllowed() {
		mechs = append(mechs, "PLAIN", "LOGIN")
	}
	mechs = append(mechs, c.s.Env.RelayMechs(&c.s.mechs, c.plaintextAllowed())...)
	lines = append(lines, `"SASL" `+quote(strings.Join(mechs, " ")))
	if cfg.TLS != nil && !c.TLS {
		lines = append(lines, `"STARTTLS"`)
	}
	lines = append(lines, `"VERSION" "1.0"`)
	if c.trusted() {
		lines = append(lines, `"XCLIENT"`)
	}
	return append(lines, "OK "+quote(text))
}

// preLogin runs the connection up to a successful login, or to its end (nil).
func (c *conn) preLogin() *login.Session {
	return login.PreLogin(&c.Conn, &c.s.cfg.Config, c.s.Env, Service, login.Commands[[]piece]{
		SetStream: c.setStream,
		Greeting:  func() []string { return c.capabilities(c.s.cfg.Greeting) },
		Read:      func() ([]piece, error) { return c.rd.readCommand() },
		Run: func(pieces []piece) (string, *login.Session, bool) {
			cmd, err := parseCommand(pieces)
			if err != nil {
				return "", nil, c.badCommand()
			}
			sess, next := c.dispatch(cmd)
			return cmd.name, sess, next
		},
	})
}

// badCommand answers a bad command; false when the client has used up its allowance (the
// last one gets only the BYE, as in Dovecot).
func (c *conn) badCommand() bool {
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		_ = c.NC.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.Reply(byeBad)
		return false
	}
	return c.Reply(noGeneric) == nil
}

// dispatch runs one pre-login command. It returns a logged-in backend session to relay, or
// whether to go on reading commands.
func (c *conn) dispatch(cmd *command) (*login.Session, bool) {
	noArgs := len(cmd.args) == 0
	switch {
	case cmd.name == "CAPABILITY" && noArgs:
		return nil, c.Reply(c.capabilities("Capability completed.")...) == nil
	case cmd.name == "NOOP" && noArgs:
		return nil, c.Reply(`OK "NOOP Completed"`) == nil
	case cmd.name == "NOOP" && len(cmd.args) == 1 && cmd.args[0].string:
		return nil, c.Reply(`OK (TAG `+quote(cmd.args[0].s)+`) "Done"`) == nil
	case cmd.name == "LOGOUT" && noArgs:
		_ = c.Reply(`OK "Logout completed."`)
		return nil, false
	case cmd.name == "STARTTLS" && noArgs:
		return nil, c.cmdStartTLS()
	case cmd.name == "XCLIENT":
		if !c.trusted() {
			return nil, c.Reply(`NO "You are not from trusted IP"`) == nil
		}
		if c.cmdXCLIENT(cmd.args) {
			return nil, c.Reply(`OK "Updated"`) == nil
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
	x.Apply(&c.Remote, &c.SessionID, &c.TTL, &c.Forward)
	return true
}

func (c *conn) cmdStartTLS() bool {
	switch {
	case c.TLS:
		return c.Reply(`NO "TLS is already active."`) == nil
	case c.s.cfg.TLS == nil:
		return c.Reply(`NO "TLS support isn't enabled."`) == nil
	}
	if c.Reply(`OK "Begin TLS negotiation now."`) != nil {
		return false
	}
	// A new reader drops anything the client pipelined in plaintext after STARTTLS: it must
	// not be taken as said under TLS. RFC 5804 wants the capabilities again under TLS.
	if !c.StartTLS(c.s.cfg.TLS, "STARTTLS", c.setStream) {
		return false
	}
	return c.Reply(c.capabilities("TLS negotiation successful.")...) == nil
}

// Reply texts of Dovecot 2.3's managesieve-login and its proxy (checked against 2.3.19).
const (
	noAuthFailed  = `NO "Authentication failed."`
	noUnavailable = `NO (TRYLATER) "Account is temporarily unavailable."`
	noConfig      = `NO "Account is temporarily unavailable."`
	noPlainAuth   = `NO "Plaintext authentication disabled."`
	noMechanism   = `NO "Unsupported authentication mechanism."`
	noBase64      = `NO "Invalid base64 in response"`
	noAborted     = `NO "Authentication aborted by client."`
	noBadResponse = `NO "Invalid AUTHENTICATE client response."`
)

// cmdAuthenticate handles AUTHENTICATE "<mech>" ["<initial response>"].
func (c *conn) cmdAuthenticate(cmd *command) (*login.Session, bool) {
	mech := strings.ToUpper(cmd.args[0].s)
	switch c.s.Env.CheckMech(&c.s.mechs, mech, c.plaintextAllowed()) {
	case login.MechUnsupported:
		return nil, c.Reply(noMechanism) == nil
	case login.MechPlaintext:
		return nil, c.Reply(noPlainAuth) == nil
	}
	var ir *string
	if len(cmd.args) == 2 {
		if !cmd.args[1].string {
			return nil, c.badCommand()
		}
		ir = &cmd.args[1].s
	}
	cr, ok, next := c.Authenticate(c.s.Env, mech, ir, login.SASL{
		Challenge: func(b64 string) error { return c.Reply(quote(b64)) },
		Read: func() (string, string, bool) {
			pieces, err := c.rd.readCommandMax(max(c.rd.maxCommand, login.MaxSASLResponse+2))
			if err != nil {
				c.ReadFailed(err)
				return "", "", false
			}
			toks, err := tokenize(pieces)
			if err != nil || len(toks) != 1 || !toks[0].string {
				return "", noBadResponse, false
			}
			return toks[0].s, "", true
		},
		Aborted: noAborted, BadBase64: noBase64, AuthFailed: noAuthFailed, Strings: true,
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
		bs.Client, c.rd = c.rd.br, nil // the session takes the client's pipelined bytes
	}
	return bs, next
}

// failTexts are managesieve-login's answers to failed logins.
func failTexts() *login.Texts {
	return &login.Texts{
		AuthFailed:  noAuthFailed,
		Config:      noConfig,
		Unavailable: noUnavailable,
		TempFail:    func(detail string) string { return "NO (TRYLATER) " + quote(detail) },
		UserIPLimit: func(limit int) string {
			return `NO (TRYLATER) "Maximum number of connections from user+IP exceeded ` +
				`(mail_max_userip_connections=` + strconv.Itoa(limit) + `)"`
		},
		NoLogin: func(reason string) string { return "NO " + quote(reason) },
	}
}
