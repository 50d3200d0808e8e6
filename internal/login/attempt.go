package login

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/tabescape"
)

// Creds are what a client authenticated with. Authz is the SASL authorization identity
// (empty unless a master user logs in as someone else).
type Creds struct {
	Mech, Authz, User, Pass string
}

// LoginUser is the mailbox owner: the user that is routed and counted.
func (cr Creds) LoginUser() string {
	if cr.Authz != "" {
		return cr.Authz
	}
	return cr.User
}

// Outcome classifies a backend login.
type Outcome int

const (
	// ResultUnavailable is a connect, remote or protocol failure, or the backend's own
	// "temporarily unavailable" (its line in Text, passed on when the reconnects are spent);
	// it is retried (backend.go).
	ResultUnavailable Outcome = iota
	ResultOK
	// ResultAuthFailed counts as a penalty; Text, when set, is the backend's line for the
	// client, otherwise the client gets the protocol's own AuthFailed text.
	ResultAuthFailed
	ResultForward // a refusal with a response code, passed on verbatim in Text
	ResultConfig  // the backend cannot be used as configured
)

// Result is the outcome of a backend login.
type Result struct {
	Kind Outcome
	Text string
	Err  error
}

// Unavailable is a ResultUnavailable with a formatted error for the log.
func Unavailable(format string, a ...any) Result {
	return Result{Kind: ResultUnavailable, Err: fmt.Errorf(format, a...)}
}

// Texts are a protocol's answers to failed logins, in the words Dovecot's login process uses.
type Texts struct {
	AuthFailed  string // wrong credentials
	Config      string // usher or the backend is misconfigured, or proxies loop
	Unavailable string // the backend cannot be reached or talked to
	// TempFail wraps TempFailText (no decision possible now).
	TempFail func(detail string) string
	// UserIPLimit is the answer when mail_max_userip_connections is reached.
	UserIPLimit func(limit int) string
}

// Attempt is one client's try at logging in.
type Attempt struct {
	Creds
	Service     string
	Client      netip.Addr // penalties and the user+IP limit key on it
	TTL         int        // hops left; a loop of proxies runs it down
	BackendPort int
	Log         *slog.Logger
}

// Frontend is what Login needs from the connection it runs for.
type Frontend struct {
	Texts *Texts
	// Sleep waits out a delay; false when the server is closing meanwhile.
	Sleep func(time.Duration) bool
	// Answer sends a failure line to the client.
	Answer func(line string) error
	// Backend connects to dest and logs the user in there.
	Backend func(ctx context.Context, dest netip.AddrPort) (*Session, Result)
}

// Login runs the login pipeline: penalty delay, passdb check, route, user+IP limit, TTL check,
// backend login. On success it returns the logged-in backend session; every failure has been
// answered, and next reports whether the client may go on (false: it is gone, or the server
// is closing).
func Login(env *Env, a Attempt, f Frontend) (sess *Session, next bool) {
	ip := a.Client
	user := a.LoginUser()
	// A login logs one line, so its attributes are put together for a line, not up front.
	logger := func() *slog.Logger { return a.Log.With("user", user, "method", a.Mech) }
	t := f.Texts

	delay, attempt := env.Penalties.Begin(ip)
	if delay > 0 && !f.Sleep(delay) {
		return sess, false
	}
	start := time.Now()
	fail := func(reply string, authFailure bool) (*Session, bool) {
		env.Stats.AuthFailure(a.Service, time.Since(start))
		if authFailure {
			env.Penalties.Fail(ip, attempt, a.User, a.Pass)
			// Dovecot's auth_failure_delay: a failed login is answered late.
			if d := env.AuthFailureDelay; d > 0 && !f.Sleep(d) {
				return sess, false
			}
		}
		return sess, f.Answer(reply) == nil
	}

	// A name is bounded before it is routed, remembered or logged: it comes
	// from an unauthenticated client.
	why := CheckUserName(a.User, env.UsernameChars)
	if why == "" && a.Authz != "" {
		why = CheckUserName(a.Authz, env.UsernameChars)
	}
	if why != "" {
		a.Log.Info("authentication failed: "+why, "method", a.Mech, "user_bytes", len(user))
		return fail(t.AuthFailed, true)
	}
	if ok, err := env.Passdb.Verify(a.Service, a.User, a.Pass); err != nil {
		logger().Error("passdb lookup failed", "err", err)
		return fail(t.TempFail(TempFailText(env.Hostname, time.Now())), false)
	} else if !ok {
		logger().Info("authentication failed (passdb)")
		return fail(t.AuthFailed, true)
	}

	ctx, cancel := context.WithTimeout(context.Background(), env.ProxyTimeout)
	defer cancel()
	ctx = withForward(ctx, env.ForwardFields(a.Service, a.User))
	host, err := env.Router.Route(ctx, user)
	if err != nil {
		logger().Info("routing failed", "err", err)
		if errors.Is(err, ErrTempFail) {
			return fail(t.TempFail(TempFailText(env.Hostname, time.Now())), false)
		}
		return fail(t.Config, false)
	}
	if limit := env.MaxUserIPConnections; limit > 0 && env.Sessions.CountUserIP(user, ip) >= limit {
		env.Router.Confirm(user, host, false)
		logger().Info("too many connections from user+IP", "limit", limit)
		return fail(t.UserIPLimit(limit), false)
	}
	if a.TTL <= 1 {
		env.Router.Confirm(user, host, false)
		logger().Error("TTL reached zero - proxies appear to be looping?")
		return fail(t.Config, false)
	}

	dest := netip.AddrPortFrom(host, uint16(a.BackendPort))
	blog := func() *slog.Logger { return logger().With("backend", dest.String()) }
	bs, res, ok := backendLogin(ctx, env, f, dest, blog)
	env.Router.Confirm(user, host, ok && res.Kind == ResultOK)
	if !ok {
		return sess, false
	}
	switch res.Kind {
	case ResultOK:
		env.Stats.AuthSuccess(a.Service, time.Since(start))
		env.Penalties.Succeed(ip, attempt)
		env.Stats.Login(a.Service)
		a.Log.LogAttrs(context.Background(), slog.LevelInfo, "started proxying", slog.String("user", user),
			slog.String("method", a.Mech), slog.String("backend", dest.String()))
		bs.User, bs.Addr = user, dest
		return bs, true
	case ResultAuthFailed:
		if res.Text == "" {
			blog().Info("authentication failed")
			return fail(t.AuthFailed, true)
		}
		blog().Info("authentication failed", "reply", res.Text)
		return fail(res.Text, true)
	case ResultForward:
		blog().Info("backend refused login", "reply", res.Text)
		return fail(res.Text, false)
	case ResultConfig:
		blog().Error("proxy configuration failure", "err", res.Err)
		return fail(t.Config, false)
	default:
		blog().Warn("backend unavailable", "err", res.Err)
		if res.Text != "" {
			// the backend's own "temporarily unavailable", passed on once the retries are spent
			return fail(res.Text, false)
		}
		return fail(t.Unavailable, false)
	}
}

// Attempt is a login on c with cr for service, whose backends listen on backendPort.
func (c *Conn) Attempt(service string, cr Creds, backendPort int) Attempt {
	return Attempt{
		Creds: cr, Service: service, Client: c.Remote.Addr(), TTL: c.TTL,
		BackendPort: backendPort, Log: c.Log,
	}
}

// Forward fields (Dovecot's forward_*): "key=value" pairs a passdb returns as forward_key=value,
// or a trusted proxy in front of us passes on (IMAP ID x-forward-key, XCLIENT FORWARD=), which
// usher hands to the backend the same ways: x-forward-key in IMAP ID, FORWARD= in POP3 XCLIENT,
// XRCPTFORWARD= on an LMTP RCPT. The backend trusts them only from its login_trusted_networks.

// ForwardPassdb is implemented by a Passdb that can return a user's forward fields, without
// the "forward_" prefix.
type ForwardPassdb interface {
	ForwardFields(service, user string) []string
}

// maxForward bounds the forward fields of one login (Dovecot's FORWARD= is effectively
// limited to about 1000 bytes).
const maxForward = 1024

type forwardKey struct{}

// withForward gives ctx the forward fields the passdb returned for the login; a front-end's
// backend dialogue reads them back with PassdbForward.
func withForward(ctx context.Context, fields []string) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	return context.WithValue(ctx, forwardKey{}, fields)
}

// PassdbForward returns the forward fields Login put in ctx.
func PassdbForward(ctx context.Context) []string {
	f, _ := ctx.Value(forwardKey{}).([]string)
	return f
}

// ForwardFields asks the passdb for user's forward fields, if it can tell.
func (e *Env) ForwardFields(service, user string) []string {
	if fp, ok := e.Passdb.(ForwardPassdb); ok {
		return boundForward(fp.ForwardFields(service, user))
	}
	return nil
}

// ForwardFields are what a backend login passes on: the trusted client's fields with the
// passdb's on top (a passdb field replaces the client's field of the same key).
func (c *Conn) ForwardFields(ctx context.Context) []string {
	return MergeForward(c.Forward, PassdbForward(ctx))
}

// MergeForward returns base with over's fields added, an over field replacing base's field
// of the same key; the result is bounded by maxForward bytes.
func MergeForward(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(over))
	for _, f := range base {
		k, _, _ := strings.Cut(f, "=")
		if !hasForwardKey(over, k) {
			out = append(out, f)
		}
	}
	return boundForward(append(out, over...))
}

func hasForwardKey(fields []string, key string) bool {
	for _, f := range fields {
		if k, _, _ := strings.Cut(f, "="); strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// boundForward drops the fields past maxForward bytes.
func boundForward(fields []string) []string {
	n := 0
	for i, f := range fields {
		if n += len(f) + 1; n > maxForward {
			return fields[:i]
		}
	}
	return fields
}

// EncodeForward renders fields as Dovecot sends FORWARD= and XRCPTFORWARD=: base64 of the
// fields joined by TAB, each tab-escaped.
func EncodeForward(fields []string) string {
	return base64.StdEncoding.EncodeToString([]byte(tabescape.Join(fields...)))
}

// DecodeForward reads EncodeForward's form; fields without '=' are dropped.
func DecodeForward(s string) ([]string, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) > 4*maxForward {
		return nil, false
	}
	var out []string
	for _, f := range tabescape.Split(string(raw)) {
		if k, _, ok := strings.Cut(f, "="); ok && k != "" {
			out = append(out, f)
		}
	}
	return boundForward(out), true
}
