package server

import (
	"errors"
	"log/slog"
	"net"

	"github.com/usher-mail/usher/internal/config"
)

// ErrRingMember refuses an offline open of a ring member's state: its log is
// the ring's, and only the ring's leader may append to it.
var ErrRingMember = errors.New("director_servers names other directors: this state belongs to a ring; import into the running ring instead")

// OpenOffline opens the state of a stopped single director as serve would
// (director_mail_servers applied the first time) but binds no listener, for
// `usher import -offline`; the caller writes through AdminPipe, then calls
// Stop and Wait. A running usher holds the state's lock, and opening fails.
func OpenOffline(s *config.Settings, log *slog.Logger) (*Server, error) {
	if len(ringPeers(s, selfAddr(s))) > 0 {
		return nil, ErrRingMember
	}
	return newServer("", s, log, false)
}

// AdminPipe is an in-process director-admin connection, as the API's.
func (srv *Server) AdminPipe() net.Conn { return srv.admin.Pipe() }
