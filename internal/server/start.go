package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/doveadm"
	"github.com/usher-mail/usher/internal/imap"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/pop3"
	"github.com/usher-mail/usher/internal/sieve"
)

// serve runs fn(l) for every listener in the background and records the
// listeners under the service name.
func (srv *Server) serve(service string, lns []net.Listener, fn func(net.Listener) error) {
	srv.mu.Lock()
	srv.services[service] = append(srv.services[service], lns...)
	srv.mu.Unlock()
	for _, l := range lns {
		srv.wg.Add(1)
		go func(l net.Listener) {
			defer srv.wg.Done()
			if err := fn(l); err != nil && !errors.Is(err, net.ErrClosed) {
				srv.log.Error("listener stopped", "service", service, "addr", l.Addr().String(), "err", err)
			}
		}(l)
	}
}

func (srv *Server) onStop(f func(ctx context.Context)) {
	srv.mu.Lock()
	srv.closers = append(srv.closers, f)
	srv.mu.Unlock()
}

// backendTLS is the client side of TLS to backends (backend_ssl = yes or
// starttls): certificates verified against ssl_client_ca_file (default: the
// system roots) and for backend_ssl_name (default: the backend's IP, which
// login.ClientTLS fills in).
func backendTLS(s *config.Settings) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.BackendSSLName, MinVersion: tls.VersionTLS12}
	if s.SSLClientCAFile != "" {
		pem, err := os.ReadFile(s.SSLClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("ssl_client_ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ssl_client_ca_file %s: no PEM certificate found", s.SSLClientCAFile)
		}
	}
	return cfg, nil
}

// tlsConfig builds the server TLS settings from ssl_cert/ssl_key, or nil when
// ssl = no or no certificate is configured.
func tlsConfig(s *config.Settings) (*tls.Config, error) {
	if s.SSL == "no" || s.SSLCert == "" || s.SSLKey == "" {
		return nil, nil
	}
	cert, err := tls.X509KeyPair([]byte(s.SSLCert), []byte(s.SSLKey))
	if err != nil {
		return nil, fmt.Errorf("ssl_cert/ssl_key: %w", err)
	}
	min := uint16(tls.VersionTLS12)
	switch s.SSLMinProtocol {
	case "TLSv1", "TLSv1.0":
		min = tls.VersionTLS10
	case "TLSv1.1":
		min = tls.VersionTLS11
	case "TLSv1.3":
		min = tls.VersionTLS13
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: min}, nil
}

// frontEnd is a login front-end (IMAP, POP3, ManageSieve).
type frontEnd interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// loginProtocols maps each login service to the protocol that enables it in `protocols`.
var loginProtocols = map[string]string{"imap-login": "imap", "pop3-login": "pop3", "managesieve-login": "sieve"}

// newFrontEnd builds the front-end of one listener of a login service.
func (srv *Server) newFrontEnd(service string, s *config.Settings, l *config.InetListener, tc, btc *tls.Config, env *login.Env) frontEnd {
	lim := srv.limiter(service, s)
	switch service {
	case "pop3-login":
		cfg := pop3.Setup(s, l, tc, btc)
		cfg.Limiter = lim
		return pop3.NewServer(cfg, env)
	case "managesieve-login":
		cfg := sieve.Setup(s, l, tc, btc)
		cfg.Limiter = lim
		return sieve.NewServer(cfg, env)
	}
	cfg := imap.Setup(s, l, tc, btc)
	cfg.Limiter = lim
	return imap.NewServer(cfg, env)
}

func apiConfig(s *config.Settings) doveadm.Config {
	cfg := doveadm.Config{
		Password:        s.DoveadmPassword,
		APIKey:          s.DoveadmAPIKey,
		AllowedCommands: s.DoveadmAllowedCommands,
		BaseDir:         s.BaseDir,
	}
	if svc, ok := s.Service("doveadm"); ok {
		cfg.MaxConnections = s.ConnLimit(svc)
	}
	return cfg
}

// startListeners starts every service of the settings that has listeners, one function per
// kind of service.
func (srv *Server) startListeners() error {
	s := srv.settings
	tc, err := tlsConfig(s)
	if err != nil {
		return err
	}
	btc, err := backendTLS(s)
	if err != nil {
		return err
	}
	srv.mu.Lock()
	srv.btc = btc
	srv.mu.Unlock()
	env := srv.loginEnv(s)
	for i := range s.Services {
		svc := &s.Services[i]
		var err error
		switch svc.Name {
		case "lmtp":
			if slices.Contains(s.Protocols, "lmtp") {
				err = srv.startLMTP(s, svc, env)
			}
		case "imap-login", "pop3-login", "managesieve-login":
			if slices.Contains(s.Protocols, loginProtocols[svc.Name]) {
				err = srv.startLogin(s, svc, tc, btc, env)
			}
		case "doveadm":
			err = srv.startDoveadm(s, svc, tc)
		case "usher":
			err = srv.startUsher(s, svc)
		case "director":
			err = srv.startDirector(s, svc)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startLogin serves a login service (imap-login, pop3-login, managesieve-login): one
// front-end per inet_listener. A TLS listener without a certificate is skipped with a warning.
func (srv *Server) startLogin(s *config.Settings, svc *config.Service, tc, btc *tls.Config, env *login.Env) error {
	for j := range svc.InetListeners {
		l := &svc.InetListeners[j]
		if l.Port == 0 {
			continue
		}
		if l.SSL && tc == nil {
			srv.log.Warn("skipping TLS listener: ssl is off or ssl_cert/ssl_key are not set", "listener", l.Name, "at", l.File+":"+strconv.Itoa(l.Line))
			continue
		}
		fe := srv.newFrontEnd(svc.Name, s, l, tc, btc, env)
		lns, err := listenTCP(s.Listen, l)
		if err != nil {
			return err
		}
		lns = srv.withHAProxy(s, l, lns)
		srv.serve(svc.Name, lns, fe.Serve)
		srv.onStop(func(ctx context.Context) { fe.Shutdown(ctx) })
		for _, ln := range lns {
			srv.log.Info("listening", "service", svc.Name, "listener", l.Name, "addr", ln.Addr().String(), "tls", l.SSL, "haproxy", l.HAProxy)
		}
	}
	return nil
}

// startDoveadm serves the doveadm HTTP API on inet_listener http; other doveadm listeners
// (Dovecot's doveadm protocol) are not served, with a warning.
func (srv *Server) startDoveadm(s *config.Settings, svc *config.Service, tc *tls.Config) error {
	for j := range svc.InetListeners {
		l := &svc.InetListeners[j]
		if l.Port == 0 {
			continue
		}
		if l.Name != "http" {
			srv.log.Warn("only the doveadm HTTP API (inet_listener http) is served", "listener", l.Name)
			continue
		}
		if err := srv.startAPI(s, l, tc); err != nil {
			return err
		}
	}
	return nil
}

// startUsher serves usher's own service: inet_listener metrics.
func (srv *Server) startUsher(s *config.Settings, svc *config.Service) error {
	for j := range svc.InetListeners {
		l := &svc.InetListeners[j]
		if l.Name != "metrics" || l.Port == 0 {
			continue
		}
		if err := srv.startMetrics(s, l); err != nil {
			return err
		}
	}
	return nil
}

// startDirector serves the director-admin protocol on the director service's unix_listener
// director-admin and its inet_listener director-admin; the unnamed inet_listener is the ring
// port (see ring.go).
func (srv *Server) startDirector(s *config.Settings, svc *config.Service) error {
	for _, u := range svc.UnixListeners {
		if u.Name != "director-admin" && u.Path != "director-admin" {
			continue
		}
		ln, err := listenUnixAt(s.BaseDir, u)
		if err != nil {
			return err
		}
		srv.admin.Limiter = srv.limiter(svc.Name, s)
		srv.serve(svc.Name, []net.Listener{ln}, srv.admin.Serve)
		srv.addAdminAt(ln.Addr().String())
	}
	for j := range svc.InetListeners {
		l := &svc.InetListeners[j]
		if l.Name != "director-admin" || l.Port == 0 {
			continue
		}
		lns, err := srv.listenAdminTCP(s, l)
		if err != nil {
			return err
		}
		srv.admin.Limiter = srv.limiter(svc.Name, s)
		srv.serve(svc.Name, lns, srv.admin.Serve)
		for _, ln := range lns {
			srv.addAdminAt(ln.Addr().String())
			srv.log.Info("listening", "service", svc.Name, "listener", l.Name, "addr", ln.Addr().String())
		}
	}
	return nil
}

func (srv *Server) startAPI(s *config.Settings, l *config.InetListener, tc *tls.Config) error {
	cfg := apiConfig(s)
	cfg.Logger = srv.log
	api := doveadm.NewServer(cfg, apiServices{srv})
	srv.mountStatus(api)
	srv.mu.Lock()
	srv.apis = append(srv.apis, api)
	srv.mu.Unlock()
	lns, err := listenTCP(s.Listen, l)
	if err != nil {
		return err
	}
	lns = srv.withHAProxy(s, l, lns)
	serve := api.Serve
	if l.SSL {
		if tc == nil {
			return fmt.Errorf("%s:%d: inet_listener http has ssl = yes but ssl_cert/ssl_key are not set", l.File, l.Line)
		}
		serve = func(ln net.Listener) error { return api.ServeTLS(ln, tc) }
	}
	srv.serve("doveadm", lns, serve)
	srv.onStop(func(ctx context.Context) { api.Shutdown(ctx) })
	for _, ln := range lns {
		srv.log.Info("listening", "service", "doveadm", "listener", "http", "addr", ln.Addr().String(), "tls", l.SSL)
	}
	return nil
}

// apply swaps in reloaded settings. Listener changes take effect at the
// next start; everything else applies at once.
func (srv *Server) apply(s *config.Settings) {
	hosts, err := parseHosts(s)
	if err != nil {
		srv.log.Error("reload: director_mail_servers", "err", err)
		return
	}
	srv.router.SetConfig(routerConfig(s, hosts))
	srv.setHealth(s)
	srv.haproxy.Set(s.HAProxyTrustedNetworks, s.HAProxyTimeout)
	srv.mu.Lock()
	for name, l := range srv.limiters {
		l.Set(connLimits(s, name))
	}
	srv.mu.Unlock()
	cfg := apiConfig(s)
	cfg.Logger = srv.log
	srv.mu.Lock()
	srv.settings = s
	apis := srv.apis
	srv.mu.Unlock()
	for _, a := range apis {
		a.SetConfig(cfg)
	}
}

// listenAdminTCP binds the TCP director-admin listener (see
// adminListenAddrs) and warns when it is configured off loopback.
func (srv *Server) listenAdminTCP(s *config.Settings, l *config.InetListener) ([]net.Listener, error) {
	addrs, exposed := adminListenAddrs(s.Listen, l)
	if exposed {
		srv.log.Warn("the director-admin TCP listener has no authentication and is configured on a non-loopback address; anyone who reaches it can move users and hosts", "at", l.File+":"+strconv.Itoa(l.Line))
	}
	return listenTCPAt(addrs, l)
}

// limiter returns service name's connection ceilings, one Limiter shared by
// all its listeners, set from s.
func (srv *Server) limiter(name string, s *config.Settings) *netx.Limiter {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	l := srv.limiters[name]
	if l == nil {
		l = &netx.Limiter{Service: name, Log: srv.log}
		srv.limiters[name] = l
	}
	l.Set(connLimits(s, name))
	return l
}

// connLimits are a service's ceilings: client_limit x process_limit in all,
// usher_client_limit_per_ip from one address, except login_trusted_networks
// (proxies in front of usher carry many clients each).
func connLimits(s *config.Settings, name string) netx.Limits {
	trusted := s.LoginTrustedNetworks
	lim := netx.Limits{PerIP: s.UsherClientLimitPerIP, Exempt: func(ip netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}}
	if svc, ok := s.Service(name); ok {
		lim.Total = s.ConnLimit(svc)
	}
	return lim
}
