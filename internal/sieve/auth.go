package sieve

import (
	"bufio"
	"context"
	"encoding/base64"
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
	cr, reply, end := login.ReadCreds(mech, ir, c.saslResponse)
	switch end {
	case login.SASLStopped:
		return nil, reply == "" || c.Reply(reply) == nil
	case login.SASLMalformed:
		c.s.Env.FailedAttempt(c.Remote.Addr())
		return nil, c.Reply(noAuthFailed) == nil
	}
	return c.login(cr)
}

// saslResponse gets one client response: the initial response when given, otherwise a
// string sent after the quoted base64 challenge. When ok is false, reply is what to answer
// ("" when the connection is gone).
func (c *conn) saslResponse(ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var text string
	if ir != nil {
		text = *ir
	} else {
		if c.Reply(quote(base64.StdEncoding.EncodeToString([]byte(challenge)))) != nil {
			return nil, "", false
		}
		pieces, err := c.rd.readCommand()
		if err != nil {
			c.readFailed(err)
			return nil, "", false
		}
		toks, err := tokenize(pieces)
		if err != nil || len(toks) != 1 || !toks[0].string {
			return nil, noBadResponse, false
		}
		text = toks[0].s
		if text == "*" {
			return nil, noAborted, false
		}
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, noBase64, false
	}
	return b, "", true
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
