package server

import (
	"context"
	"net"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/lmtp"
	"github.com/usher-mail/usher/internal/login"
)

// startLMTP serves the lmtp service's inet listeners and its unix listeners (Dovecot's
// default is the unix socket "lmtp" in base_dir, mode 0666) with one LMTP front-end.
func (srv *Server) startLMTP(s *config.Settings, svc *config.Service, env *login.Env) error {
	cfg := lmtp.Setup(s)
	cfg.Limiter = srv.limiter(svc.Name, s)
	ls := lmtp.NewServer(cfg, env)
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
		all = append(all, srv.withHAProxy(s, l, lns)...)
	}
	for _, u := range svc.UnixListeners {
		ln, err := listenUnixAt(s.BaseDir, u)
		if err != nil {
			return err
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
