package server

import (
	"github.com/usher-mail/usher/internal/authservice"
	"github.com/usher-mail/usher/internal/config"
)

// setAuthService makes the auth service of s the one logins ask, keeping the running one
// (and its connections) when its sockets are unchanged; a replaced one is closed, which
// fails the requests still waiting on it as temporary failures.
func (srv *Server) setAuthService(s *config.Settings) {
	client, master := s.UsherAuthService, s.AuthMasterEndpoint()
	old := srv.authService.Load()
	if old != nil && old.Client() == client && old.Master() == master {
		return
	}
	var svc *authservice.Service
	if client.Network != "" {
		svc = authservice.New(client, master)
		srv.log.Info("logins are answered by the Dovecot auth service; usher's passdb sections are not checked",
			"usher_auth_service", client.String(), "auth_socket_path", master.String())
		if master.Network == "" && hasProtocol(s, "lmtp") {
			srv.log.Warn("LMTP recipients cannot be looked up without the auth service's auth-master listener: set auth_socket_path (RCPT gets a temporary failure)")
		}
	}
	srv.authService.Store(svc)
	if old != nil {
		old.Close()
	}
}

func hasProtocol(s *config.Settings, p string) bool {
	for _, q := range s.Protocols {
		if q == p {
			return true
		}
	}
	return false
}
