package sieve

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

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
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.Reply(noMechanism) == nil
	}
	if !c.plaintextAllowed() {
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
			pieces, err := c.rd.readCommand()
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
	bs, next := login.Login(c.s.Env, c.Attempt(Service, cr, c.s.cfg.BackendPort), login.Frontend{
		Texts:  failTexts(),
		Sleep:  c.s.Sleep,
		Answer: func(line string) error { return c.Reply(line) },
		Backend: c.s.cfg.Backend(func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*login.Session, login.Result) {
			return c.backendDialogue(nc, br, dest, cr)
		}),
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
	}
}
