package login

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/usher-mail/usher/internal/passdb"
)

// A passdb's reply says whether and how a login is proxied (Dovecot's proxy fields, reference
// 4.4 and 6.1; docs/config.md "Passdb reply fields"). Target is that decision for one login:
// the passdb's fields over usher's backend_* settings. Login puts it in the backend
// dialogue's context (TargetOf), as it does the forward fields.

// Target is how one login reaches its backend.
type Target struct {
	// User is the name routed, counted and logged: the passdb's user= or the login's.
	User string
	passdb.Fields
}

// ErrNoProxy is a passdb reply that a Dovecot director would serve itself.
var ErrNoProxy = errors.New("passdb reply has no proxy field: a Dovecot director would serve this login locally, " +
	"and usher has no local mail (add proxy=y to the passdb's fields)")

// Verdict classifies a passdb reply for a login.
type Verdict int

const (
	Proxy      Verdict = iota // go on to the backend
	AuthFailed                // wrong password or unknown user: a penalty
	TempFailed                // the passdb cannot decide now
	NoLogin                   // nologin: refused without a penalty, Reason for the client
	Misconfig                 // the reply cannot be acted on: no proxy field, a bad value
)

// ReadReply turns a passdb's answer to the login of user into a Target. err explains a
// TempFailed or Misconfig verdict, for the log.
func ReadReply(r passdb.Reply, lookupErr error, user string) (Target, Verdict, error) {
	switch {
	case lookupErr != nil:
		return Target{}, TempFailed, lookupErr
	case r.Temp:
		return Target{}, TempFailed, errors.New("passdb: temporary failure")
	case !r.OK:
		return Target{}, AuthFailed, nil
	}
	f, err := passdb.ParseFields(r.Fields)
	if err != nil {
		return Target{}, Misconfig, err
	}
	t := Target{User: user, Fields: f}
	if r.User != "" {
		t.User = r.User
	}
	if why := CheckUserName(t.User, ""); why != "" {
		return t, Misconfig, fmt.Errorf("passdb user name: %s", why)
	}
	// proxy is read before nologin, as Dovecot's login process does: a proxied user's nologin
	// is the backend's business.
	switch {
	case f.Proxy || f.ProxyMaybe:
		return t, Proxy, nil
	case f.NoLogin:
		return t, NoLogin, nil
	}
	return t, Misconfig, ErrNoProxy
}

// TagRouter is a Router with director_tag rings (usher's router is one).
type TagRouter interface {
	RouteTag(ctx context.Context, user, tag string) (netip.Addr, error)
	ConfirmTag(user, tag string, backend netip.Addr, accepted bool)
}

// Pinned reports whether the passdb named the backend (host=): the director is bypassed.
func (t *Target) Pinned() bool { return t.Host != "" }

// Route finds the backend's address: host= (hostip=, or the name resolved), or the ring of
// the user's director_tag. confirm must be called once with whether the backend accepted the
// login; for a pinned host it records nothing, so the user gets no mapping.
func (t *Target) Route(ctx context.Context, r Router) (ip netip.Addr, confirm func(accepted bool), err error) {
	if t.Pinned() {
		ip, err = t.hostIP(ctx)
		return ip, func(bool) {}, err
	}
	name := t.RouteName()
	if t.DirectorTag == "" {
		ip, err = r.Route(ctx, name)
		return ip, func(ok bool) { r.Confirm(name, ip, ok) }, err
	}
	tr, ok := r.(TagRouter)
	if !ok {
		return ip, nil, fmt.Errorf("director_tag=%s: this router has no tags", t.DirectorTag)
	}
	ip, err = tr.RouteTag(ctx, name, t.DirectorTag)
	return ip, func(ok bool) { tr.ConfirmTag(name, t.DirectorTag, ip, ok) }, err
}

// RouteName is the name the director hashes: the passdb's destuser when it has one, else the
// user (reference 4.2: Dovecot's director takes destuser over user).
func (t *Target) RouteName() string {
	if t.DestUser != "" {
		return t.DestUser
	}
	return t.User
}

func (t *Target) hostIP(ctx context.Context) (netip.Addr, error) {
	if t.HostIP.IsValid() {
		return t.HostIP.Unmap(), nil
	}
	if ip, err := netip.ParseAddr(t.Host); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", t.Host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("%w: host=%s: %v", ErrTempFail, t.Host, err)
	}
	return ips[0].Unmap(), nil
}

// Port is the backend port: port=, else with ssl= the protocol's implicit-TLS port (as
// Dovecot), else the configured one.
func (t *Target) Port(configured, tlsDefault int) int {
	switch {
	case t.Fields.Port != 0:
		return t.Fields.Port
	case t.TLS == passdb.TLSImplicit && tlsDefault != 0:
		return tlsDefault
	}
	return configured
}

// BackendTLS is how to reach the backend: "yes", "starttls" or "no" and the client TLS
// configuration, from ssl=/starttls= over backend_ssl; any-cert skips the certificate check.
func (t *Target) BackendTLS(ssl string, base *tls.Config) (string, *tls.Config) {
	if t == nil {
		return ssl, base
	}
	switch t.TLS {
	case passdb.TLSImplicit:
		ssl = "yes"
	case passdb.TLSStartTLS:
		ssl = "starttls"
	}
	if t.AnyCert {
		cfg := &tls.Config{}
		if base != nil {
			cfg = base.Clone()
		}
		// The passdb asked for it: any-cert means the backend's certificate is not checked.
		cfg.InsecureSkipVerify = true
		base = cfg
	}
	return ssl, base
}

// Creds are the credentials the backend gets for a client that logged in with cr, as
// Dovecot's proxy sends them: destuser (or the passdb's user=) as the user, pass= instead
// of the client's password, and with master= a master-user login for that user.
func (t *Target) Creds(cr Creds) Creds {
	if t == nil {
		return cr
	}
	user := t.DestUser
	if user == "" && t.User != cr.LoginUser() {
		user = t.User
	}
	if t.HasPass {
		cr.Pass = t.Pass
	}
	switch {
	case t.Master != "":
		if user == "" {
			user = cr.LoginUser()
		}
		cr.Authz, cr.User = user, t.Master
	case user != "" && cr.Authz != "":
		cr.Authz = user
	case user != "":
		cr.User = user
	}
	return cr
}

// SASL reports whether the backend login must be a SASL exchange (AUTHENTICATE PLAIN, AUTH
// PLAIN) rather than IMAP's LOGIN or POP3's USER/PASS: proxy_mech, or a master user.
func (t *Target) SASL() bool {
	return t != nil && (t.ProxyMech != "" || t.Master != "")
}

// Trusted reports whether the backend gets the client's address and forward fields (IMAP
// ID, XCLIENT): not with proxy_not_trusted.
func (t *Target) Trusted() bool { return t == nil || !t.NotTrusted }

// Pipelining reports whether the proxy may send its commands without waiting for each
// answer: not with proxy_nopipelining.
func (t *Target) Pipelining() bool { return t == nil || !t.NoPipelining }

type targetKey struct{}

// WithTarget gives a backend dialogue's context the login's Target.
func WithTarget(ctx context.Context, t *Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// TargetOf is the login's Target; nil (every method's defaults: usher's settings) when the
// context has none.
func TargetOf(ctx context.Context) *Target {
	t, _ := ctx.Value(targetKey{}).(*Target)
	return t
}
