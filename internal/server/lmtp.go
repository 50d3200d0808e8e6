package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/lmtp"
	"github.com/usher-mail/usher/internal/login"
)

// startLMTP serves the lmtp service's inet listeners and its unix listeners (Dovecot's
// default is the unix socket "lmtp" in base_dir, mode 0666) with one LMTP front-end.
func (srv *Server) startLMTP(s *config.Settings, svc *config.Service, env *login.Env) error {
	ls := lmtp.NewServer(lmtp.Config{
		Greeting:       s.LoginGreeting,
		BackendPort:    s.BackendLMTPPort,
		UsernameFormat: s.AuthUsernameFormat,
		MaxRecipients:  s.UsherLMTPMaxRecipients,
		Limiter:        srv.limiter(svc.Name, s),
	}, env)
	var all []net.Listener
	for j := range svc.InetListeners {
		l := &svc.InetListeners[j]
		if l.Port == 0 {
			continue
		}
		lns, err := listenTCP(s.Listen, l)
		if err != nil {
			return err
		}
		all = append(all, lns...)
	}
	for _, u := range svc.UnixListeners {
		path := u.Path
		if path == "" {
			path = u.Name
		}
		mode := os.FileMode(0o600)
		if u.Mode != "" {
			m, err := strconv.ParseUint(u.Mode, 8, 32)
			if err != nil {
				return fmt.Errorf("%s:%d: unix_listener %s: mode %q: %w", u.File, u.Line, u.Name, u.Mode, err)
			}
			mode = os.FileMode(m)
		}
		ln, err := listenUnix(s.BaseDir, path, mode)
		if err != nil {
			return fmt.Errorf("%s:%d: unix_listener %s: %w", u.File, u.Line, u.Name, err)
		}
		all = append(all, ln)
	}
	srv.serve(svc.Name, all, ls.Serve)
	srv.onStop(func(ctx context.Context) { ls.Shutdown(ctx) })
	for _, ln := range all {
		srv.log.Info("listening", "service", svc.Name, "addr", ln.Addr().String())
	}
	return nil
}
