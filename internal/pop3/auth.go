package pop3

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

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
		if !c.plaintextAllowed() {
			return nil, c.Reply("+OK", ".") == nil
		}
		return nil, c.Reply("+OK", "PLAIN", "LOGIN", ".") == nil
	}
	mech, irText, hasIR := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.Reply(errMechanism) == nil
	}
	if !c.plaintextAllowed() {
		return nil, c.Reply(errPlainAuth) == nil
	}
	var ir *string
	if hasIR {
		ir = &irText
	}
	cr, ok, next := c.Authenticate(c.s.Env, mech, ir, login.SASL{
		Challenge: func(b64 string) error { return c.Reply("+ " + b64) },
		Read: func() (string, string, bool) {
			line, err := readLine(c.br, c.s.cfg.MaxLineLength)
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
	bs, next := login.Login(c.s.Env, c.Attempt(Service, cr, c.s.cfg.BackendPort), login.Frontend{
		Texts:  failTexts(),
		Sleep:  c.s.Sleep,
		Answer: func(line string) error { return c.Reply(line) },
		Backend: c.s.cfg.Backend(func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*login.Session, login.Result) {
			return c.backendDialogue(ctx, nc, br, dest, cr)
		}),
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
	}
}
