package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

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

// creds are what the client authenticated with. authz is the SASL authorization identity
// (empty unless a master user logs in as someone else).
type creds struct {
	mech, authz, user, pass string
}

// loginUser is the mailbox owner: the user that is routed and counted.
func (cr creds) loginUser() string {
	if cr.authz != "" {
		return cr.authz
	}
	return cr.user
}

func (c *conn) cmdLogin(tag, user, pass string) (*backendSession, bool) {
	if !c.plaintextAllowed() {
		return nil, c.reply(byeExposedPass, tag+" "+noPlainLogin) == nil
	}
	return c.login(tag, creds{mech: "LOGIN", user: user, pass: pass})
}

func (c *conn) cmdAuthenticate(cmd *command) (*backendSession, bool) {
	mech, ok := cmd.args[0].str()
	if !ok {
		return nil, c.badCommand(cmd.tag, badGeneric)
	}
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.reply(cmd.tag+" "+noMechanism) == nil
	}
	if !c.plaintextAllowed() {
		return nil, c.reply(cmd.tag+" "+noPlainAuth) == nil
	}
	var ir *string
	if len(cmd.args) == 2 {
		s, ok := cmd.args[1].str()
		if !ok {
			return nil, c.badCommand(cmd.tag, badGeneric)
		}
		ir = &s
	}
	cr := creds{mech: mech}
	var failReply string
	if mech == "PLAIN" {
		resp, reply, ok := c.saslResponse(cmd.tag, ir, "")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			failReply = cmd.tag + " " + noAuthFailed
		} else {
			cr.authz, cr.user, cr.pass = string(parts[0]), string(parts[1]), string(parts[2])
			if cr.authz == cr.user {
				cr.authz = ""
			}
		}
	} else {
		user, reply, ok := c.saslResponse(cmd.tag, ir, "Username:")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		pass, reply, ok := c.saslResponse(cmd.tag, nil, "Password:")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		cr.user, cr.pass = string(user), string(pass)
	}
	if failReply != "" {
		// Malformed credentials are a failed attempt like a wrong password.
		_, attempt := c.s.env.Penalties.Begin(c.remote.Addr())
		c.s.env.Penalties.Fail(c.remote.Addr(), attempt, "", "")
		return nil, c.reply(failReply) == nil
	}
	return c.login(cmd.tag, cr)
}

// saslResponse gets one client response: the initial response when given, otherwise after a
// "+ <challenge>" continuation. When ok is false, reply is what to answer ("" when the
// connection is gone).
func (c *conn) saslResponse(tag string, ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var line string
	if ir != nil {
		line = *ir
	} else {
		if c.reply("+ "+base64.StdEncoding.EncodeToString([]byte(challenge))) != nil {
			return nil, "", false
		}
		var err error
		line, err = c.rd.readLine(c.s.cfg.MaxLineLength)
		if err != nil {
			c.readFailed(err)
			return nil, "", false
		}
	}
	if line == "*" {
		return nil, tag + " " + badAborted, false
	}
	if line == "=" {
		return []byte{}, "", true
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, tag + " " + noBase64, false
	}
	return b, "", true
}

// login runs the login pipeline: penalty delay, route, limits, backend login. On success it
// returns the logged-in backend; every failure has been answered and the client may retry.
func (c *conn) login(tag string, cr creds) (*backendSession, bool) {
	env := c.s.env
	ip := c.remote.Addr()
	user := cr.loginUser()
	log := c.log.With("user", user, "method", cr.mech)

	delay, attempt := env.Penalties.Begin(ip)
	if delay > 0 && !c.s.conns.Sleep(delay) {
		return nil, false
	}
	start := time.Now()
	fail := func(reply string, authFailure bool) (*backendSession, bool) {
		env.Stats.AuthFailure(Service, time.Since(start))
		if authFailure {
			env.Penalties.Fail(ip, attempt, cr.user, cr.pass)
			// Dovecot's auth_failure_delay: a failed login is answered late.
			if d := env.AuthFailureDelay; d > 0 && !c.s.conns.Sleep(d) {
				return nil, false
			}
		}
		return nil, c.reply(tag+" "+reply) == nil
	}

	if ok, err := env.Passdb.Verify(Service, cr.user, cr.pass); err != nil {
		log.Error("passdb lookup failed", "err", err)
		return fail("NO [UNAVAILABLE] "+login.TempFailText(env.Hostname, time.Now()), false)
	} else if !ok {
		log.Info("authentication failed (passdb)")
		return fail(noAuthFailed, true)
	}

	ctx, cancel := context.WithTimeout(context.Background(), env.ProxyTimeout)
	defer cancel()
	host, err := env.Router.Route(ctx, user)
	if err != nil {
		log.Info("routing failed", "err", err)
		if errors.Is(err, login.ErrTempFail) {
			return fail("NO [UNAVAILABLE] "+login.TempFailText(env.Hostname, time.Now()), false)
		}
		return fail(noServerBug, false)
	}
	if limit := env.MaxUserIPConnections; limit > 0 && env.Sessions.CountUserIP(user, ip) >= limit {
		log.Info("too many connections from user+IP", "limit", limit)
		return fail("NO [LIMIT] Maximum number of connections from user+IP exceeded "+
			"(mail_max_userip_connections="+strconv.Itoa(limit)+")", false)
	}
	if c.ttl <= 1 {
		log.Error("TTL reached zero - proxies appear to be looping?")
		return fail(noServerBug, false)
	}

	dest := addrPortOf(host, c.s.cfg.BackendPort)
	bs, res := c.loginBackend(ctx, dest, cr)
	log = log.With("backend", dest.String())
	switch res.kind {
	case resultOK:
		env.Stats.AuthSuccess(Service, time.Since(start))
		env.Penalties.Succeed(ip, attempt)
		env.Stats.Login(Service)
		bs.tag = tag
		log.Info("started proxying")
		return bs, true
	case resultAuthFailed:
		log.Info("authentication failed")
		return fail(noAuthFailed, true)
	case resultForward:
		log.Info("backend refused login", "reply", res.text)
		return fail(res.text, false)
	case resultConfig:
		log.Error("proxy configuration failure", "err", res.err)
		return fail(noServerBug, false)
	default:
		log.Warn("backend unavailable", "err", res.err)
		return fail(noUnavailable, false)
	}
}

// loggedInReply tells the client it is logged in, with the backend's capabilities.
func (c *conn) loggedInReply(tag string, bs *backendSession) []string {
	text := bs.okText
	if bs.caps == "" {
		return []string{tag + " OK " + text}
	}
	if c.capsSeen {
		return []string{"* CAPABILITY " + bs.caps, tag + " OK " + text}
	}
	return []string{tag + " OK [CAPABILITY " + bs.caps + "] " + text}
}
