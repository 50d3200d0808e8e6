package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/router"
	"github.com/usher-mail/usher/internal/sessions"
	"github.com/usher-mail/usher/internal/stats"
)

// loginEnv is the login pipeline's view of the server's services: each adapter below gives
// login one concrete service through the small interface login declares.
func (srv *Server) loginEnv(s *config.Settings) *login.Env {
	host, _ := os.Hostname()
	return &login.Env{
		Router:               loginRouter{srv.router},
		Passdb:               passdbCheck{srv},
		Penalties:            srv.penalties,
		Sessions:             sessionsAdapter{srv},
		Stats:                loginStats{srv.stats},
		Logger:               srv.log,
		TrustedNetworks:      s.LoginTrustedNetworks,
		DisablePlaintextAuth: s.DisablePlaintextAuth,
		MaxUserIPConnections: s.MailMaxUserIPConnections,
		Hostname:             host,
		ProxyTimeout:         s.LoginProxyTimeout,
		MaxReconnects:        s.LoginProxyMaxReconnects,
		AuthFailureDelay:     s.AuthFailureDelay,
		UsernameChars:        s.AuthUsernameChars,
		UsernameFormat:       s.AuthUsernameFormat,
		Backends:             srv.backendIPs,
	}
}

// backendIPs lists the director's backends, up or down, for the front-ends that ask them
// their SASL mechanisms.
func (srv *Server) backendIPs() []netip.Addr {
	var ips []netip.Addr
	for _, h := range srv.router.Hosts() {
		ips = append(ips, h.IP)
	}
	return ips
}

// loginRouter tells the front-ends which routing failures are temporary.
type loginRouter struct{ r *router.Router }

func (l loginRouter) Route(ctx context.Context, user string) (netip.Addr, error) {
	ip, err := l.r.Route(ctx, user)
	if errors.Is(err, router.ErrTempFail) {
		err = fmt.Errorf("%w: %v", login.ErrTempFail, err)
	}
	return ip, err
}

func (l loginRouter) Confirm(user string, backend netip.Addr, accepted bool) {
	l.r.Confirm(user, backend, accepted)
}

// RouteTag and ConfirmTag route a passdb's director_tag (login.TagRouter).
func (l loginRouter) RouteTag(ctx context.Context, user, tag string) (netip.Addr, error) {
	ip, err := l.r.RouteTag(ctx, user, tag)
	if errors.Is(err, router.ErrTempFail) {
		err = fmt.Errorf("%w: %v", login.ErrTempFail, err)
	}
	return ip, err
}

func (l loginRouter) ConfirmTag(user, tag string, backend netip.Addr, accepted bool) {
	l.r.ConfirmTag(user, tag, backend, accepted)
}

// sessionsAdapter gives the login pipeline the registry, tagging each session
// with the user's director hash so moves can kick it.
type sessionsAdapter struct{ srv *Server }

func (s sessionsAdapter) Register(info login.SessionInfo, kick func(string)) func(int64, int64) {
	// The session keeps its director mapping alive: the name hashed (destuser, as Dovecot's
	// proxy notifies the director with) in its director_tag ring; who and kicks by user still
	// go by the login's user.
	route := info.Route
	if route == "" {
		route = info.User
	}
	h, _ := s.srv.router.Hash(route)
	s.srv.stats.SessionStart(info.Service)
	// A session registers once its backend accepted the login: proof of where logins go.
	s.srv.learnBackendPort(info.Service, info.Backend)
	return s.srv.sessions.Add(sessions.Session{
		ID: info.ID, Service: info.Service, User: info.User,
		Client: info.Client, Local: info.Local, Backend: info.Backend,
		Start: info.Start, Hash: h, Tag: info.Tag,
	}, kick)
}

func (s sessionsAdapter) CountUserIP(user string, ip netip.Addr) int {
	return s.srv.sessions.CountUserIP(user, ip)
}

// buildPassdb turns the passdb sections into usher's own passdb; nil means usher checks
// nothing and proxies every login, the backends deciding (the default, and Dovecot's
// "proxy=y nopassword=y"). With usher_auth_service set the Dovecot auth service answers
// every login, whatever its drivers, and the sections only document what it does (as a
// Dovecot director's own passdb sections would, were the auth service its own): nothing is
// built from them.
func buildPassdb(s *config.Settings) (*passdb.DB, error) {
	if s.UsherAuthService.Network != "" {
		return nil, nil
	}
	return passdb.New(s.Passdbs, s.AuthUsernameFormat)
}

// passdbCheck is the login pipeline's passdb (login.Passdb). It loads the passdb on every
// call (atomically: a login storm does not queue on the server's lock), so a reload that
// changes the passdb sections applies to the next login.
type passdbCheck struct{ srv *Server }

// proxyAll is the answer without a passdb: proxy every login, the backend decides.
var proxyAll = passdb.Reply{OK: true, Fields: []string{"proxy"}}

// Authenticate answers one login or LMTP recipient: the Dovecot auth service when
// usher_auth_service is set, else usher's own passdb.
func (p passdbCheck) Authenticate(ctx context.Context, req passdb.Request) (passdb.Reply, error) {
	if svc := p.srv.authService.Load(); svc != nil {
		r, err := svc.Authenticate(ctx, req)
		if err != nil {
			p.srv.log.Error("auth service lookup failed", "service", req.Service, "user", req.User, "err", err)
		}
		return r, err
	}
	db := p.srv.passdb.Load()
	if db == nil {
		return proxyAll, nil
	}
	r, err := db.Authenticate(ctx, req)
	if err != nil {
		// Never the password: only who and why.
		p.srv.log.Error("passdb lookup failed", "service", req.Service, "user", req.User, "err", err)
	}
	return r, err
}

// ChecksPasswords reports whether usher has passwords checked before routing (a Dovecot auth
// service, or a passdb other than static nopassword ones); then the front-ends offer no
// relayed SASL mechanism (login.Env.RelayAllowed).
func (p passdbCheck) ChecksPasswords() bool {
	if p.srv.authService.Load() != nil {
		return true
	}
	db := p.srv.passdb.Load()
	return db != nil && db.ChecksPasswords()
}

// loginStats feeds the front-ends' events to the stats. The commands a front-end sees are
// pre-login commands, which Dovecot's imap_command metric never counts on a director.
type loginStats struct{ *stats.Stats }

func (l loginStats) Command(service, name string, d time.Duration) {
	l.Stats.PreloginCommand(service, name, d)
}
