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
	}
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

// sessionsAdapter gives the login pipeline the registry, tagging each session
// with the user's director hash so moves can kick it.
type sessionsAdapter struct{ srv *Server }

func (s sessionsAdapter) Register(info login.SessionInfo, kick func(string)) func(int64, int64) {
	h, _ := s.srv.router.Hash(info.User)
	s.srv.stats.SessionStart(info.Service)
	return s.srv.sessions.Add(sessions.Session{
		ID: info.ID, Service: info.Service, User: info.User,
		Client: info.Client, Local: info.Local, Backend: info.Backend,
		Start: info.Start, Hash: h,
	}, kick)
}

func (s sessionsAdapter) CountUserIP(user string, ip netip.Addr) int {
	return s.srv.sessions.CountUserIP(user, ip)
}

// buildPassdb turns the passdb sections into usher's own password check; nil means usher
// checks nothing and the backends decide (the default, and Dovecot's "proxy=y nopassword=y").
func buildPassdb(s *config.Settings) (*passdb.DB, error) {
	return passdb.New(s.Passdbs, s.AuthUsernameFormat)
}

// passdbCheck is the login pipeline's password hook. It loads the checker on every call
// (atomically: a login storm does not queue on the server's lock), so a reload that changes
// the passdb sections applies to the next login.
type passdbCheck struct{ srv *Server }

// Verify reports whether pass is user's password for the service. Without a configured
// passdb every password passes here and the backend decides.
func (p passdbCheck) Verify(service, user, pass string) (bool, error) {
	db := p.srv.passdb.Load()
	if db == nil {
		return true, nil
	}
	ok, err := db.Verify(service, user, pass)
	if err != nil {
		// Never the password: only who and why.
		p.srv.log.Error("passdb lookup failed", "service", service, "user", user, "err", err)
	}
	return ok, err
}

// ForwardFields are user's forward_* fields from the passdb, for the backend login.
func (p passdbCheck) ForwardFields(service, user string) []string {
	db := p.srv.passdb.Load()
	if db == nil {
		return nil
	}
	return db.ForwardFields(service, user)
}

// loginStats feeds the front-ends' events to the stats. The commands a front-end sees are
// pre-login commands, which Dovecot's imap_command metric never counts on a director.
type loginStats struct{ *stats.Stats }

func (l loginStats) Command(service, name string, d time.Duration) {
	l.Stats.PreloginCommand(service, name, d)
}
