package pop3

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

func (c *conn) cmdPass(pass string) (*backendSession, bool) {
	if !c.plaintextAllowed() {
		return nil, c.reply(errPlainUser) == nil
	}
	if !c.hasUser {
		return nil, c.reply(errNoUser) == nil
	}
	// Every PASS uses up the USER before it, whatever the outcome.
	user := c.user
	c.user, c.hasUser = "", false
	if user == "" {
		// "USER" alone is accepted, as by Dovecot, but can never log in: fail it here
		// rather than route an empty name.
		_, attempt := c.s.env.Penalties.Begin(c.remote.Addr())
		c.s.env.Penalties.Fail(c.remote.Addr(), attempt, "", "")
		return nil, c.reply(errAuthFailed) == nil
	}
	return c.login(creds{mech: "PLAIN", user: user, pass: pass})
}

// cmdAuth handles "AUTH" (list mechanisms) and "AUTH <mech> [initial response]".
func (c *conn) cmdAuth(args string) (*backendSession, bool) {
	if args == "" {
		if !c.plaintextAllowed() {
			return nil, c.reply("+OK", ".") == nil
		}
		return nil, c.reply("+OK", "PLAIN", "LOGIN", ".") == nil
	}
	mech, irText, hasIR := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.reply(errMechanism) == nil
	}
	if !c.plaintextAllowed() {
		return nil, c.reply(errPlainAuth) == nil
	}
	var ir *string
	if hasIR {
		ir = &irText
	}
	cr := creds{mech: mech}
	if mech == "PLAIN" {
		resp, reply, ok := c.saslResponse(ir, "")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			// Malformed credentials are a failed attempt like a wrong password.
			_, attempt := c.s.env.Penalties.Begin(c.remote.Addr())
			c.s.env.Penalties.Fail(c.remote.Addr(), attempt, "", "")
			return nil, c.reply(errAuthFailed) == nil
		}
		cr.authz, cr.user, cr.pass = string(parts[0]), string(parts[1]), string(parts[2])
		if cr.authz == cr.user {
			cr.authz = ""
		}
	} else {
		user, reply, ok := c.saslResponse(ir, "Username:")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		pass, reply, ok := c.saslResponse(nil, "Password:")
		if !ok {
			return nil, reply == "" || c.reply(reply) == nil
		}
		cr.user, cr.pass = string(user), string(pass)
	}
	return c.login(cr)
}

// saslResponse gets one client response: the initial response when given, otherwise after a
// "+ <challenge>" continuation. When ok is false, reply is what to answer ("" when the
// connection is gone).
func (c *conn) saslResponse(ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var line string
	if ir != nil {
		line = *ir
	} else {
		if c.reply("+ "+base64.StdEncoding.EncodeToString([]byte(challenge))) != nil {
			return nil, "", false
		}
		var err error
		line, err = readLine(c.br, c.s.cfg.MaxLineLength)
		if err != nil {
			c.readFailed(err)
			return nil, "", false
		}
	}
	if line == "*" {
		return nil, errAborted, false
	}
	if line == "=" {
		return []byte{}, "", true
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, errBase64, false
	}
	return b, "", true
}

// login runs the login pipeline: penalty delay, route, limits, backend login. On success it
// returns the logged-in backend; every failure has been answered and the client may retry.
func (c *conn) login(cr creds) (*backendSession, bool) {
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
		return nil, c.reply(reply) == nil
	}

	if ok, err := env.Passdb.Verify(Service, cr.user, cr.pass); err != nil {
		log.Error("passdb lookup failed", "err", err)
		return fail("-ERR [SYS/TEMP] "+login.TempFailText(env.Hostname, time.Now()), false)
	} else if !ok {
		log.Info("authentication failed (passdb)")
		return fail(errAuthFailed, true)
	}

	ctx, cancel := context.WithTimeout(context.Background(), env.ProxyTimeout)
	defer cancel()
	host, err := env.Router.Route(ctx, user)
	if err != nil {
		log.Info("routing failed", "err", err)
		if errors.Is(err, login.ErrTempFail) {
			return fail("-ERR [SYS/TEMP] "+login.TempFailText(env.Hostname, time.Now()), false)
		}
		return fail(errConfig, false)
	}
	if limit := env.MaxUserIPConnections; limit > 0 && env.Sessions.CountUserIP(user, ip) >= limit {
		log.Info("too many connections from user+IP", "limit", limit)
		return fail("-ERR [IN-USE] Maximum number of connections from user+IP exceeded "+
			"(mail_max_userip_connections="+strconv.Itoa(limit)+")", false)
	}
	if c.ttl <= 1 {
		log.Error("TTL reached zero - proxies appear to be looping?")
		return fail(errConfig, false)
	}

	dest := addrPortOf(host, c.s.cfg.BackendPort)
	bs, res := c.loginBackend(ctx, dest, cr)
	log = log.With("backend", dest.String())
	switch res.kind {
	case resultOK:
		env.Stats.AuthSuccess(Service, time.Since(start))
		env.Penalties.Succeed(ip, attempt)
		env.Stats.Login(Service)
		log.Info("started proxying")
		return bs, true
	case resultAuthFailed:
		log.Info("authentication failed", "reply", res.text)
		return fail(res.text, true)
	case resultForward:
		log.Info("backend refused login", "reply", res.text)
		return fail(res.text, false)
	case resultConfig:
		log.Error("proxy configuration failure", "err", res.err)
		return fail(errConfig, false)
	default:
		log.Warn("backend unavailable", "err", res.err)
		return fail(errUnavailable, false)
	}
}
