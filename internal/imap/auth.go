package imap

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

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
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.Reply(cmd.tag+" "+noMechanism) == nil
	}
	if !c.plaintextAllowed() {
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
	bs, next := login.Login(c.s.Env, c.Attempt(Service, cr, c.s.cfg.BackendPort), login.Frontend{
		Texts:  failTexts(),
		Sleep:  c.s.Sleep,
		Answer: func(line string) error { return c.Reply(tag + " " + line) },
		Backend: c.s.cfg.Backend(func(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (*login.Session, login.Result) {
			return c.backendDialogue(ctx, nc, br, dest, tag, cr)
		}),
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
