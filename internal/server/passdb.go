package server

import (
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/stats"
)

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
