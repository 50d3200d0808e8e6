// Package server wires usher together: it reads the settings, opens the
// replicated state, starts the front-ends and the admin interfaces, and runs
// the process lifecycle (SIGHUP reload, SIGTERM drain).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/admin"
	"github.com/usher-mail/usher/internal/authservice"
	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/director"
	"github.com/usher-mail/usher/internal/doveadm"
	"github.com/usher-mail/usher/internal/health"
	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/penalty"
	"github.com/usher-mail/usher/internal/proxyproto"
	"github.com/usher-mail/usher/internal/ring"
	"github.com/usher-mail/usher/internal/router"
	"github.com/usher-mail/usher/internal/sessions"
	"github.com/usher-mail/usher/internal/stats"
	"github.com/usher-mail/usher/internal/status"
)

// ShutdownGrace bounds how long SIGTERM waits for proxied sessions to end
// before closing them.
const ShutdownGrace = 10 * time.Second

// Server is one running usher.
type Server struct {
	log      *slog.Logger
	confPath string

	mu       sync.Mutex
	settings *config.Settings
	services map[string][]net.Listener // service name -> its listeners, for serviceStop
	closers  []func(ctx context.Context)

	node      *cluster.Node
	ring      *ring.Ring // nil for a ring of one
	router    *router.Router
	sessions  *sessions.Registry
	penalties *penalty.Table
	stats     *stats.Stats
	admin     *admin.Server
	apis      []*doveadm.Server
	passdb    atomic.Pointer[passdb.DB] // nil: usher checks no passwords; read by every login, so no lock
	// authService answers every login when usher_auth_service is set (passdb is nil then).
	authService atomic.Pointer[authservice.Service]
	events      *status.Events
	limiters    map[string]*netx.Limiter // service name -> its connection ceilings, shared by its listeners; guarded by mu
	haproxy     *proxyproto.Policy       // haproxy_trusted_networks and haproxy_timeout of every haproxy = yes listener
	adminAt     []string                 // this director's admin sockets (unix paths, TCP host:port), the API's allowed socketPaths; guarded by mu

	checker       *health.Checker // nil with usher_health_check = none; guarded by mu
	btc           *tls.Config     // TLS towards the backends, built at start for the proxies and the health checks alike
	healthMetrics *health.Metrics

	isReady atomic.Bool // state loaded and listeners up, for /readyz

	stopOnce sync.Once
	stopping chan struct{} // closed when shutdown begins
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// New opens the state and binds every listener of s; Run serves them.
func New(confPath string, s *config.Settings, log *slog.Logger) (*Server, error) {
	return newServer(confPath, s, log, true)
}

// newServer opens the state and, when listen is set, binds the listeners.
func newServer(confPath string, s *config.Settings, log *slog.Logger, listen bool) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	srv := &Server{
		log: log, confPath: confPath, settings: s,
		services:  map[string][]net.Listener{},
		limiters:  map[string]*netx.Limiter{},
		haproxy:   proxyproto.NewPolicy(s.HAProxyTrustedNetworks, s.HAProxyTimeout, log),
		sessions:  sessions.New(),
		penalties: penalty.New(time.Now),
		stats:     stats.New(time.Now),
		events:    &status.Events{},
		stopping:  make(chan struct{}),

		healthMetrics: health.NewMetrics(),
		stopped:       make(chan struct{}),
	}
	if err := srv.open(listen); err != nil {
		srv.Stop()
		srv.Wait()
		return nil, err
	}
	return srv, nil
}

func (srv *Server) open(listen bool) error {
	s := srv.settings
	hosts, err := parseHosts(s)
	if err != nil {
		return err
	}
	db, err := buildPassdb(s)
	if err != nil {
		return err
	}
	srv.passdb.Store(db)
	srv.setAuthService(s)
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return err
	}
	self := selfAddr(s)
	// Kicks can commit before the router exists (replays are filtered by
	// the cluster); they find no sessions to close then.
	var rt atomic.Pointer[router.Router]
	onKick := func(k cluster.Kick) {
		if r := rt.Load(); r != nil {
			r.OnKick(k)
		}
	}
	ringAdmin, err := srv.openState(self, onKick)
	if err != nil {
		return err
	}
	if err := srv.initHosts(toClusterHosts(hosts)); err != nil {
		return err
	}
	srv.router = router.New(srv.node, kicker{srv.sessions}, routerConfig(s, hosts), srv.log)
	rt.Store(srv.router)
	srv.admin = admin.NewServer(srv.router, ringAdmin, srv.log)
	srv.recordEvents()
	if !listen {
		return nil
	}
	if err := srv.startListeners(); err != nil {
		return err
	}
	srv.setHealth(s)
	srv.isReady.Store(true)
	return nil
}

func parseHosts(s *config.Settings) ([]director.Host, error) {
	hosts, err := director.ParseMailServers(s.DirectorMailServers, resolveHost)
	if err != nil {
		return nil, fmt.Errorf("director_mail_servers: %w", err)
	}
	return hosts, nil
}

// toClusterHosts: the parsed hosts as OpInitHosts carries them, hostnames included (Dovecot's
// ring syncs a configured host's name with it).
func toClusterHosts(hs []director.Host) []cluster.Host {
	out := make([]cluster.Host, 0, len(hs))
	for _, h := range hs {
		out = append(out, cluster.Host{Host: h})
	}
	return out
}

func routerConfig(s *config.Settings, initial []director.Host) router.Config {
	return router.Config{
		HashTemplate:     s.DirectorUsernameHash,
		Expire:           s.DirectorUserExpire,
		KickDelay:        s.DirectorUserKickDelay,
		MaxParallelMoves: s.DirectorMaxParallelMoves,
		QueueTimeout:     s.DirectorQueueTimeout,
		InitialHosts:     initial,
	}
}

// resolveHost resolves backend names; names under .invalid fail at once
// (RFC 6761) so tests never wait on DNS.
func resolveHost(name string) ([]netip.Addr, error) {
	if isInvalidName(name) {
		return nil, fmt.Errorf("%s: host not found", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, err
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// isInvalidName reports names under the reserved .invalid TLD (RFC 6761).
func isInvalidName(name string) bool {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	return n == "invalid" || strings.HasSuffix(n, ".invalid")
}

// selfAddr is this director's ring address: the director_servers entry on
// one of our listen addresses, or the only entry of a ring of one.
func selfAddr(s *config.Settings) netip.AddrPort {
	port := ringPort(s)
	cands := ringMembers(s)
	for _, c := range cands {
		for _, l := range s.Listen {
			if l == c.Addr().String() {
				return c
			}
		}
	}
	// listen = * : the entry on one of this machine's addresses.
	if addrs, err := net.InterfaceAddrs(); err == nil && len(cands) > 1 {
		for _, c := range cands {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == c.Addr() {
					return c
				}
			}
		}
	}
	if len(cands) > 0 {
		return cands[0]
	}
	for _, l := range s.Listen {
		if ip, err := netip.ParseAddr(l); err == nil {
			return netip.AddrPortFrom(ip, port)
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// Stop begins a graceful shutdown; Wait returns when it is complete.
func (srv *Server) Stop() {
	srv.stopOnce.Do(func() {
		if srv.isReady.Load() {
			srv.notify("STOPPING=1")
		}
		close(srv.stopping)
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			srv.shutdown()
		}()
	})
}

func (srv *Server) shutdown() {
	defer close(srv.stopped)
	srv.mu.Lock()
	for name, lns := range srv.services {
		for _, l := range lns {
			l.Close()
		}
		delete(srv.services, name)
	}
	closers := srv.closers
	srv.closers = nil
	srv.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range closers {
		wg.Add(1)
		go func(c func(context.Context)) { defer wg.Done(); c(ctx) }(c)
	}
	wg.Wait()
	if svc := srv.authService.Swap(nil); svc != nil {
		svc.Close() // after the front-ends: their last logins may still ask it
	}
	if srv.admin != nil {
		srv.admin.Close()
	}
	srv.stopHealth()
	if srv.router != nil {
		srv.router.Close()
	}
	var err error
	switch {
	case srv.ring != nil:
		err = srv.ring.Close()
	case srv.node != nil:
		err = srv.node.Close()
	}
	if err != nil {
		srv.log.Error("closing state", "err", err)
	}
}

// Done is closed once the server has shut down.
func (srv *Server) Done() <-chan struct{} { return srv.stopped }

// Wait blocks until Stop has finished.
func (srv *Server) Wait() {
	<-srv.stopped
	srv.wg.Wait()
}

// Reload re-reads the config file. A file with errors is rejected and the
// running settings stay in force; sessions are never dropped.
func (srv *Server) Reload() error {
	if srv.confPath == "" {
		return errors.New("no config file to reload (dev mode)")
	}
	srv.notify(sdReloading())
	err := srv.reload()
	if err != nil {
		srv.notify("READY=1\nSTATUS=reload rejected, running settings kept: " + oneLine(err.Error()))
	} else {
		srv.notify("READY=1\nSTATUS=configuration reloaded")
	}
	return err
}

func (srv *Server) reload() error {
	s, warns, err := config.Load(srv.confPath)
	if err != nil {
		srv.log.Error("reload rejected, keeping the running settings", "err", err)
		return err
	}
	for _, w := range warns {
		srv.log.Warn("config", "warning", w.String())
	}
	db, err := buildPassdb(s)
	if err != nil {
		srv.log.Error("reload rejected, keeping the running settings", "err", err)
		return err
	}
	srv.passdb.Store(db)
	srv.setAuthService(s)
	srv.apply(s)
	srv.log.Info("configuration reloaded", "file", srv.confPath)
	return nil
}

// StopServices closes the listeners of the named services (doveadm service
// stop) and returns the names it does not know.
func (srv *Server) StopServices(names []string) (unknown []string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, n := range names {
		lns, ok := srv.services[n]
		if !ok {
			if !knownService(n) {
				unknown = append(unknown, n)
			}
			continue
		}
		for _, l := range lns {
			l.Close()
		}
		delete(srv.services, n)
	}
	return unknown
}

// knownService says whether a name is a service usher has, even when none
// of its listeners is configured or it was already stopped.
func knownService(n string) bool {
	switch n {
	case "imap-login", "pop3-login", "lmtp", "managesieve-login", "doveadm", "director",
		"anvil", "auth", "config", "log", "stats", "imap", "pop3", "managesieve":
		return true
	}
	return false
}
