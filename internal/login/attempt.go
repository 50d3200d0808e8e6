package login

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/passdb"
)

// Creds are what a client authenticated with. Authz is the SASL authorization identity
// (empty unless a master user logs in as someone else). Relay, for a mechanism usher relays,
// is the exchange the backend dialogue runs instead of a login with Pass (saslrelay.go).
type Creds struct {
	Mech, Authz, User, Pass string
	Relay                   *Exchange
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
	// ResultAnswered: the client ended a relayed exchange (saslrelay.go) and has been
	// answered already (Text, "" when it has gone).
	ResultAnswered
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
	// NoLogin is the answer to a login the passdb refuses with nologin: its reason, or
	// NoLoginText when it gives none.
	NoLogin func(reason string) string
}

// NoLoginText is Dovecot's answer to a nologin without a reason.
const NoLoginText = "Login disabled for this user"

// Attempt is one client's try at logging in.
type Attempt struct {
	Creds
	Service       string
	Client        netip.Addr // penalties and the user+IP limit key on it
	Remote, Local netip.AddrPort
	TLS           bool   // the client's connection is TLS
	Session       string // the session id, for the passdb's logs
	TTL           int    // hops left; a loop of proxies runs it down
	BackendPort   int
	Log           *slog.Logger
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
	delay, attempt := env.Penalties.Begin(a.Client)
	if delay > 0 && !f.Sleep(delay) {
		return nil, false
	}
	start := time.Now()
	l := &loginRun{env: env, a: a, f: f, user: a.LoginUser()}
	bs, ref, ok := l.run()
	switch {
	case !ok:
		return nil, false
	case bs != nil:
		env.Stats.AuthSuccess(a.Service, time.Since(start))
		env.Penalties.Succeed(a.Client, attempt)
		env.Stats.Login(a.Service)
		a.Log.LogAttrs(context.Background(), slog.LevelInfo, "started proxying", slog.String("user", l.user),
			slog.String("method", a.Mech), slog.String("backend", bs.Addr.String()))
		return bs, true
	}
	env.Stats.AuthFailure(a.Service, time.Since(start))
	if ref.answered {
		return nil, ref.reply != ""
	}
	if ref.penalty {
		env.Penalties.Fail(a.Client, attempt, a.User, a.Pass)
		// Dovecot's auth_failure_delay: a failed login is answered late.
		if d := env.AuthFailureDelay; d > 0 && !f.Sleep(d) {
			return nil, false
		}
	}
	return nil, f.Answer(ref.reply) == nil
}

// refusal is how a login step turns the client down; Login answers it.
type refusal struct {
	reply   string // the answer to the client
	penalty bool   // a wrong password: counted, and answered after auth_failure_delay
	// answered: the backend dialogue has answered the client itself (ResultAnswered); a
	// reply "" then means the client is gone.
	answered bool
}

// loginRun is one Login's state across its steps.
type loginRun struct {
	env  *Env
	a    Attempt
	f    Frontend
	user string // the name routed and logged: the client's, then the passdb's user=
}

// logger is for a login's one line, so its attributes are put together for a line, not up front.
func (l *loginRun) logger() *slog.Logger { return l.a.Log.With("user", l.user, "method", l.a.Mech) }

// run takes the login's steps: the logged-in session (its User and Addr set), or why not;
// ok is false when the server is closing meanwhile.
func (l *loginRun) run() (bs *Session, ref refusal, ok bool) {
	if ref, stop := l.checkNames(); stop {
		return nil, ref, true
	}
	tg, ref, stop := l.askPassdb()
	if stop {
		return nil, ref, true
	}
	l.user = tg.User // the passdb's user= is the name routed and logged from here on

	// login_proxy_timeout bounds the director's queue and the backend login; a passdb's
	// proxy_timeout, as in Dovecot, only the backend's connect and login.
	ctx, cancel := context.WithTimeout(WithTarget(context.Background(), &tg), l.env.ProxyTimeout)
	defer cancel()
	dest, confirm, ref, stop := l.route(ctx, &tg)
	if stop {
		return nil, ref, true
	}
	if tg.ProxyTimeout > 0 {
		var cancelBackend context.CancelFunc
		ctx, cancelBackend = context.WithTimeout(WithTarget(context.Background(), &tg), tg.ProxyTimeout)
		defer cancelBackend()
	}
	blog := func() *slog.Logger { return l.logger().With("backend", dest.String()) }
	bs, res, ok := backendLogin(ctx, l.env, l.f, dest, blog)
	confirm(ok && res.Kind == ResultOK)
	if !ok {
		return nil, ref, false
	}
	if res.Kind == ResultOK {
		bs.User, bs.Addr, bs.Route, bs.Tag = l.user, dest, tg.RouteName(), tg.DirectorTag
		return bs, ref, true
	}
	return nil, l.backendRefusal(res, blog), true
}

// checkNames bounds the names before they are routed, remembered or logged: they come from
// an unauthenticated client.
func (l *loginRun) checkNames() (refusal, bool) {
	a := l.a
	why := CheckUserName(a.User, l.env.UsernameChars)
	if why == "" && a.Authz != "" {
		why = CheckUserName(a.Authz, l.env.UsernameChars)
	}
	if why == "" {
		return refusal{}, false
	}
	a.Log.Info("authentication failed: "+why, "method", a.Mech, "user_bytes", len(l.user))
	return refusal{reply: l.f.Texts.AuthFailed, penalty: true}, true
}

// askPassdb is the passdb's verdict on the login, as a Target or a refusal.
func (l *loginRun) askPassdb() (Target, refusal, bool) {
	t := l.f.Texts
	tg, verdict := askPassdb(l.env, l.a, l.logger)
	switch verdict {
	case AuthFailed:
		return tg, refusal{reply: t.AuthFailed, penalty: true}, true
	case TempFailed:
		return tg, refusal{reply: t.TempFail(TempFailText(l.env.Hostname, time.Now()))}, true
	case NoLogin:
		// The password was right: no penalty, as Dovecot's auth service answers at once.
		reason := tg.Reason
		if reason == "" {
			reason = NoLoginText
		}
		return tg, refusal{reply: t.NoLogin(reason)}, true
	case Misconfig:
		return tg, refusal{reply: t.Config}, true
	}
	return tg, refusal{}, false
}

// route finds the backend and checks the user+IP limit and proxy loops; confirm is to be
// called with whether the backend accepted the login (route calls it on a refusal).
func (l *loginRun) route(ctx context.Context, tg *Target) (dest netip.AddrPort, confirm func(bool), ref refusal, stop bool) {
	t, a := l.f.Texts, l.a
	host, confirm, err := tg.Route(ctx, l.env.Router)
	if err != nil {
		l.logger().Info("routing failed", "err", err)
		if errors.Is(err, ErrTempFail) {
			return dest, nil, refusal{reply: t.TempFail(TempFailText(l.env.Hostname, time.Now()))}, true
		}
		return dest, nil, refusal{reply: t.Config}, true
	}
	dest = netip.AddrPortFrom(host, uint16(tg.Port(a.BackendPort, implicitTLSPorts[a.Service])))
	limit := l.env.MaxUserIPConnections
	switch {
	case limit > 0 && l.env.Sessions.CountUserIP(l.user, a.Client) >= limit:
		l.logger().Info("too many connections from user+IP", "limit", limit)
		ref = refusal{reply: t.UserIPLimit(limit)}
	case a.TTL <= 1:
		l.logger().Error("TTL reached zero - proxies appear to be looping?")
		ref = refusal{reply: t.Config}
	case dest == a.Local:
		l.logger().Error("Proxying loops to itself", "backend", dest.String())
		ref = refusal{reply: t.Config}
	default:
		return dest, confirm, ref, false
	}
	confirm(false)
	return dest, nil, ref, true
}

// backendRefusal answers a backend login that did not succeed, and logs why.
func (l *loginRun) backendRefusal(res Result, blog func() *slog.Logger) refusal {
	t := l.f.Texts
	switch res.Kind {
	case ResultAuthFailed:
		if res.Text == "" {
			blog().Info("authentication failed")
			return refusal{reply: t.AuthFailed, penalty: true}
		}
		blog().Info("authentication failed", "reply", res.Text)
		return refusal{reply: res.Text, penalty: true}
	case ResultForward:
		blog().Info("backend refused login", "reply", res.Text)
		return refusal{reply: res.Text}
	case ResultConfig:
		blog().Error("proxy configuration failure", "err", res.Err)
		return refusal{reply: t.Config}
	case ResultAnswered:
		blog().Info("authentication aborted by client")
		return refusal{reply: res.Text, answered: true}
	}
	blog().Warn("backend unavailable", "err", res.Err)
	if res.Text != "" {
		// the backend's own "temporarily unavailable", passed on once the retries are spent
		return refusal{reply: res.Text}
	}
	return refusal{reply: t.Unavailable}
}

// Attempt is a login on c with cr for service, whose backends listen on backendPort.
func (c *Conn) Attempt(service string, cr Creds, backendPort int) Attempt {
	return Attempt{
		Creds: cr, Service: service, Client: c.Remote.Addr(), Remote: c.Remote, Local: c.Local,
		TLS: c.TLS, Session: c.SessionID, TTL: c.TTL, BackendPort: backendPort, Log: c.Log,
	}
}

// implicitTLSPorts are the backend ports Dovecot's proxy uses for ssl= without port=.
var implicitTLSPorts = map[string]int{"imap": 993, "pop3": 995}

// askPassdb asks the passdb about the login, once, and reads its reply (ReadReply), logging
// why a login goes no further.
func askPassdb(env *Env, a Attempt, logger func() *slog.Logger) (Target, Verdict) {
	mech := a.Mech
	if mech == "" {
		mech = "PLAIN" // a login always has a password; "" would be a lookup
	}
	ctx, cancel := context.WithTimeout(context.Background(), env.ProxyTimeout)
	defer cancel()
	rep, err := env.Passdb.Authenticate(ctx, passdb.Request{
		Service: a.Service, User: a.User, Authz: a.Authz, Pass: a.Pass, Mech: mech,
		Local: a.Local, Remote: a.Remote, Secured: a.TLS || env.IsTrusted(a.Client), Session: a.Session,
	})
	tg, verdict, why := ReadReply(rep, err, passdb.FormatUser(env.UsernameFormat, a.LoginUser()))
	switch verdict {
	case AuthFailed:
		logger().Info("authentication failed (passdb)")
	case TempFailed:
		logger().Error("passdb lookup failed", "err", why)
	case NoLogin:
		logger().Info("login refused by the passdb (nologin)", "reason", tg.Reason)
	case Misconfig:
		logger().Error("passdb reply not usable", "err", why)
	}
	return tg, verdict
}

// MaxUserName bounds a login name in bytes. Dovecot 2.3's login processes
// take at most about 1 KiB for all of a command's arguments
// (LOGIN_MAX_INBUF_SIZE), so no longer name logs in there either; a name is
// routed, remembered and logged, so its size is bounded before any of that.
const MaxUserName = 1024

// CheckUserName says why name may not log in ("" if it may): empty, longer
// than MaxUserName, a byte outside chars (auth_username_chars; "" allows
// all but control characters).
func CheckUserName(name, chars string) string {
	switch {
	case name == "":
		return "empty user name"
	case len(name) > MaxUserName:
		return "user name too long"
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if chars == "" && (b < ' ' || b == 0x7f) || chars != "" && strings.IndexByte(chars, b) < 0 {
			return "user name character disallowed by auth_username_chars"
		}
	}
	return ""
}

// IsTrusted reports whether ip is in login_trusted_networks.
func (e *Env) IsTrusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range e.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// PlaintextAllowed reports whether a plaintext password may be sent: always on TLS, from
// loopback or trusted networks, and everywhere when disable_plaintext_auth is off.
func (e *Env) PlaintextAllowed(client netip.Addr, tls bool) bool {
	return !e.DisablePlaintextAuth || tls || client.Unmap().IsLoopback() || e.IsTrusted(client)
}

// TempFailText is Dovecot's text for a temporary authentication failure; the host and local
// time let an administrator find the matching log lines.
func TempFailText(hostname string, now time.Time) string {
	return "Temporary authentication failure. [" + hostname + ":" + now.Format("2006-01-02 15:04:05") + "]"
}

// The generic part of a pre-login dialogue: login deadline, TLS, greeting, the command loop
// with its bounds, goodbyes on read errors, and SASL PLAIN/LOGIN. The protocol supplies only
// its words and encoding.

// Commands is a protocol's part of the pre-login dialogue that PreLogin drives. P is the raw
// form of one command as the protocol reads it.
type Commands[P any] struct {
	SetStream func(net.Conn) // installs the stream the protocol reads and writes (TLS or not)
	Greeting  func() []string
	// Read reads one command; an error ends the connection (see ReadFailed).
	Read func() (P, error)
	// Run parses and runs one command: the logged-in Session to relay, or whether to go on
	// reading commands; name is the command's, for the stats, "" when it did not parse (and
	// has been answered).
	Run func(P) (name string, s *Session, next bool)
}

// PreLogin runs c up to a successful login (its Session) or to its end (nil).
func PreLogin[P any](c *Conn, cfg *Config, env *Env, service string, d Commands[P]) *Session {
	_ = c.Raw.SetDeadline(time.Now().Add(cfg.LoginTimeout))
	if cfg.ImplicitTLS {
		if !c.StartTLS(cfg.TLS, "TLS", d.SetStream) {
			return nil
		}
	} else {
		d.SetStream(c.Raw)
	}
	if c.Reply(d.Greeting()...) != nil {
		return nil
	}
	for n := 1; ; n++ {
		p, err := d.Read()
		if err != nil {
			c.ReadFailed(err)
			return nil
		}
		// A client that talks without ever logging in only costs us: the login timeout
		// bounds its time, this bounds its work.
		if n > cfg.MaxCommands {
			c.LastWord("Too many commands before login.")
			return nil
		}
		start := time.Now()
		name, sess, next := d.Run(p)
		if name != "" {
			env.Stats.Command(service, name, time.Since(start))
		}
		if sess != nil {
			return sess
		}
		if !next {
			return nil
		}
	}
}

// SASL is how a protocol carries a SASL exchange: its continuation, its responses and its
// replies to a refused one.
type SASL struct {
	Challenge func(b64 string) error // sends a base64 challenge in the protocol's form
	// Read reads one response; when ok is false, reply is what to answer ("" when the
	// connection is gone).
	Read                           func() (text, reply string, ok bool)
	Aborted, BadBase64, AuthFailed string // replies to "*", to bad base64, to malformed credentials
	// Strings: responses are the protocol's strings (ManageSieve), in which "*" aborts only as
	// an answer to a challenge and "=" is not the empty response.
	Strings bool
}

// Authenticate collects credentials over SASL PLAIN or LOGIN (mech, upper case) with the
// initial response ir (nil: none), or starts the exchange of a relayed mechanism
// (saslrelay.go: cr.Relay). ok: log in with cr. Otherwise the exchange has been answered, and
// next says whether the connection goes on.
func (c *Conn) Authenticate(env *Env, mech string, ir *string, s SASL) (cr Creds, ok, next bool) {
	var reply string
	var end SASLEnd
	if IsRelayed(mech) {
		cr, reply, end = StartRelay(mech, ir, s.ask, func(line string) error { return c.Reply(line) })
	} else {
		cr, reply, end = ReadCreds(mech, ir, s.ask)
	}
	switch end {
	case SASLStopped:
		return cr, false, reply == "" || c.Reply(reply) == nil
	case SASLMalformed:
		env.FailedAttempt(c.Remote.Addr())
		return cr, false, c.Reply(s.AuthFailed) == nil
	}
	return cr, true, true
}

// ask gets one client response: the initial response ir when given, otherwise one read after
// the challenge.
func (s *SASL) ask(ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var text string
	if ir != nil {
		text = *ir
	} else {
		if s.Challenge(base64.StdEncoding.EncodeToString([]byte(challenge))) != nil {
			return nil, "", false
		}
		if text, reply, ok = s.Read(); !ok {
			return nil, reply, false
		}
		if s.Strings && text == "*" {
			return nil, s.Aborted, false
		}
	}
	if !s.Strings {
		if text == "*" {
			return nil, s.Aborted, false
		}
		if text == "=" {
			return []byte{}, "", true
		}
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, s.BadBase64, false
	}
	return b, "", true
}

// SASLEnd says how a credentials exchange ended.
type SASLEnd int

const (
	SASLDone SASLEnd = iota // the credentials are complete
	// SASLStopped: a response was refused or the client has gone; answer the reply, if any.
	SASLStopped
	// SASLMalformed: PLAIN credentials not shaped authzid NUL user NUL pass. The client is
	// told its authentication failed, and it counts as a failed attempt (see FailedAttempt).
	SASLMalformed
)

// Ask gets one client response to challenge, or takes the initial response ir when given.
// When ok is false, reply is what to answer ("" when the connection is gone).
type Ask func(ir *string, challenge string) (resp []byte, reply string, ok bool)

// ReadCreds collects credentials over SASL PLAIN or LOGIN; mech is one of the two, upper case.
func ReadCreds(mech string, ir *string, ask Ask) (cr Creds, reply string, end SASLEnd) {
	cr.Mech = mech
	if mech == "PLAIN" {
		resp, reply, ok := ask(ir, "")
		if !ok {
			return cr, reply, SASLStopped
		}
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			return cr, "", SASLMalformed
		}
		cr.Authz, cr.User, cr.Pass = string(parts[0]), string(parts[1]), string(parts[2])
		if cr.Authz == cr.User {
			cr.Authz = ""
		}
		return cr, "", SASLDone
	}
	user, reply, ok := ask(ir, "Username:")
	if !ok {
		return cr, reply, SASLStopped
	}
	pass, reply, ok := ask(nil, "Password:")
	if !ok {
		return cr, reply, SASLStopped
	}
	cr.User, cr.Pass = string(user), string(pass)
	return cr, "", SASLDone
}

// FailedAttempt counts a login that failed before any password check (malformed
// credentials, no user name) like a wrong password, so such clients are slowed down too.
func (e *Env) FailedAttempt(ip netip.Addr) {
	_, attempt := e.Penalties.Begin(ip)
	e.Penalties.Fail(ip, attempt, "", "")
}
