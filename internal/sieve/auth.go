package sieve

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"net/netip"

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

// cmdAuthenticate handles AUTHENTICATE "<mech>" ["<initial response>"].
func (c *conn) cmdAuthenticate(cmd *command) (*backendSession, bool) {
	mech := strings.ToUpper(cmd.args[0].s)
	if mech != "PLAIN" && mech != "LOGIN" {
		return nil, c.reply(noMechanism) == nil
	}
	if !c.plaintextAllowed() {
		return nil, c.reply(noPlainAuth) == nil
	}
	var ir *string
	if len(cmd.args) == 2 {
		if !cmd.args[1].string {
			return nil, c.badCommand()
		}
		ir = &cmd.args[1].s
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
			return nil, c.reply(noAuthFailed) == nil
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

// saslResponse gets one client response: the initial response when given, otherwise a
// string sent after the quoted base64 challenge. When ok is false, reply is what to answer
// ("" when the connection is gone).
func (c *conn) saslResponse(ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var text string
	if ir != nil {
		text = *ir
	} else {
		if c.reply(quote(base64.StdEncoding.EncodeToString([]byte(challenge)))) != nil {
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
		return fail("NO (TRYLATER) "+quote(login.TempFailText(env.Hostname, time.Now())), false)
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
			return fail("NO (TRYLATER) "+quote(login.TempFailText(env.Hostname, time.Now())), false)
		}
		return fail(noConfig, false)
	}
	if limit := env.MaxUserIPConnections; limit > 0 && env.Sessions.CountUserIP(user, ip) >= limit {
		log.Info("too many connections from user+IP", "limit", limit)
		return fail(`NO (TRYLATER) "Maximum number of connections from user+IP exceeded `+
			`(mail_max_userip_connections=`+strconv.Itoa(limit)+`)"`, false)
	}
	if c.ttl <= 1 {
		log.Error("TTL reached zero - proxies appear to be looping?")
		return fail(noConfig, false)
	}

	dest := netip.AddrPortFrom(host, uint16(c.s.cfg.BackendPort))
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
		return fail(noConfig, false)
	default:
		log.Warn("backend unavailable", "err", res.err)
		return fail(noUnavailable, false)
	}
}
