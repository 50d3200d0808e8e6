// Package login is the protocol-independent part of a proxy front-end: who may send a plaintext
// password, which backend a user goes to, penalties for failed logins, the registry of proxied
// sessions and the byte relay once a session is established. The IMAP, POP3 and ManageSieve
// front-ends share it; the interfaces are declared here, on the consumer side, and the server
// package adapts the concrete router, penalty, sessions and stats types to them.
package login

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/usher-mail/usher/internal/passdb"
)

// ProxyTTL is the hop budget a fresh client starts with (Dovecot's LOGIN_PROXY_TTL). Each proxy
// forwards ttl-1 and refuses to proxy at ttl <= 1, which stops proxy loops.
const ProxyTTL = 5

// DefaultProxyTimeout is Dovecot's login_proxy_timeout.
const DefaultProxyTimeout = 30 * time.Second

// ErrTempFail marks a Router error meaning "cannot decide now"; clients are told
// "Temporary authentication failure" and may retry.
var ErrTempFail = errors.New("temporary authentication failure")

// Router decides the backend of a user (sticky, consistent hashing). err is ErrTempFail-wrapped
// when the director cannot decide now ("Temporary authentication failure"). Every successful
// Route is followed by one Confirm saying whether the backend accepted the user: a new user's
// backend is recorded only once a login there succeeded.
type Router interface {
	Route(ctx context.Context, user string) (backend netip.Addr, err error)
	Confirm(user string, backend netip.Addr, accepted bool)
}

// Penalties slows down clients that keep failing to authenticate (anvil's auth penalty).
type Penalties interface {
	// Begin is called at the start of every authentication attempt; the caller sleeps delay.
	Begin(ip netip.Addr) (delay time.Duration, attempt int)
	Fail(ip netip.Addr, attempt int, user, password string)
	Succeed(ip netip.Addr, attempt int)
}

// SessionInfo describes one proxied session.
type SessionInfo struct {
	ID, Service, User string
	// Route and Tag are the name the director hashed (destuser, else User; "" is User) and
	// the director_tag ring it was routed in: the mapping the session keeps alive.
	Route, Tag    string
	Client, Local netip.AddrPort
	Backend       netip.AddrPort
	Start         time.Time
}

// Sessions is the registry of proxied sessions, used for who/kick and per user+IP limits.
type Sessions interface {
	// Register records a proxied session; kick closes it (reason for logs / BYE text).
	Register(info SessionInfo, kick func(reason string)) (done func(bytesIn, bytesOut int64))
	CountUserIP(user string, ip netip.Addr) int
}

// Passdb answers each login (and each LMTP recipient) once: whether the password is right and,
// in the reply's fields, whether and how to proxy it (Dovecot's proxy fields; see Target).
// Without one every login is proxied and the backend decides (Dovecot's proxy=y
// nopassword=y).
type Passdb = passdb.Authenticator

// Stats receives the events behind statsDump and /metrics.
type Stats interface {
	Login(service string)
	AuthSuccess(service string, d time.Duration)
	AuthFailure(service string, d time.Duration)
	Command(service, name string, d time.Duration)
	SessionFinished(service string, d time.Duration, in, out int64)
}

// Env is everything a front-end needs besides its own protocol settings. Router is required;
// WithDefaults fills the other interfaces with no-ops.
type Env struct {
	Router
	Penalties
	Sessions
	Stats
	Passdb
	Logger *slog.Logger
	// TrustedNetworks is login_trusted_networks: these clients may override their address and
	// session id (IMAP ID, XCLIENT) and count as secured.
	TrustedNetworks []netip.Prefix
	// DisablePlaintextAuth refuses plaintext logins on insecure connections from untrusted,
	// non-loopback clients. Dovecot's default is true.
	DisablePlaintextAuth bool
	// MaxUserIPConnections is mail_max_userip_connections; 0 means no limit.
	MaxUserIPConnections int
	// Hostname goes into "Temporary authentication failure. [host:time]".
	Hostname string
	// AuthFailureDelay holds back the answer to a failed login (Dovecot's
	// auth_failure_delay, 2 s there); 0 answers at once.
	AuthFailureDelay time.Duration
	// ProxyTimeout bounds connecting to and logging in on a backend.
	ProxyTimeout time.Duration
	// MaxReconnects is login_proxy_max_reconnects (Dovecot's default 3; 0 here: none).
	MaxReconnects int
	// UsernameChars is auth_username_chars: the bytes a user name may
	// hold; "" allows every byte but control characters.
	UsernameChars string
	// UsernameFormat is auth_username_format (e.g. %Lu): the login name as Dovecot's auth
	// service names it in its OK, which is the name routed and logged unless the passdb's
	// user= says otherwise.
	UsernameFormat string
	// Backends lists the director's backends, which the front-ends ask for the SASL
	// mechanisms they offer (mechs.go); nil: learned from logins only.
	Backends func() []netip.Addr
}

// WithDefaults returns a copy of e where unset optional parts are replaced by no-ops and
// defaults, so front-ends need no nil checks.
func (e *Env) WithDefaults() *Env {
	c := *e
	if c.Penalties == nil {
		c.Penalties = nopPenalties{}
	}
	if c.Sessions == nil {
		c.Sessions = nopSessions{}
	}
	if c.Stats == nil {
		c.Stats = nopStats{}
	}
	if c.Passdb == nil {
		c.Passdb = nopPassdb{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.ProxyTimeout <= 0 {
		c.ProxyTimeout = DefaultProxyTimeout
	}
	return &c
}

type nopPenalties struct{}

func (nopPenalties) Begin(netip.Addr) (time.Duration, int) { return 0, 0 }
func (nopPenalties) Fail(netip.Addr, int, string, string)  {}
func (nopPenalties) Succeed(netip.Addr, int)               {}

type nopSessions struct{}

func (nopSessions) Register(SessionInfo, func(string)) func(int64, int64) {
	return func(int64, int64) {}
}
func (nopSessions) CountUserIP(string, netip.Addr) int { return 0 }

type nopPassdb struct{}

func (nopPassdb) Authenticate(context.Context, passdb.Request) (passdb.Reply, error) {
	return passdb.Reply{OK: true, Fields: []string{"proxy"}}, nil
}

type nopStats struct{}

func (nopStats) Login(string)                                        {}
func (nopStats) AuthSuccess(string, time.Duration)                   {}
func (nopStats) AuthFailure(string, time.Duration)                   {}
func (nopStats) Command(string, string, time.Duration)               {}
func (nopStats) SessionFinished(string, time.Duration, int64, int64) {}
