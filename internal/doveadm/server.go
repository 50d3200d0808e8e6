package doveadm

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/netx"
)

// Config holds the settings that can change at runtime (SetConfig on reload).
type Config struct {
	Password        string   // doveadm_password
	APIKey          string   // doveadm_api_key
	AllowedCommands []string // doveadm_allowed_commands, registered (space) names
	Logger          *slog.Logger
	// BaseDir is base_dir: an explicit socketPath of who/kick/penalty (anvil), statsDump
	// (stats-reader) and oldstats (old-stats) must name usher's own socket there, since those
	// services are in-process; any other path is an unreachable service (exit 75).
	BaseDir string
	// DirectorAdminPath is what `director dump` shows as socket-path when none was given
	// (default BaseDir/director-admin).
	DirectorAdminPath string
	// MaxConnections bounds concurrent HTTP connections (default 64).
	MaxConnections int
	// IdleTimeout bounds the wait for a request and each read inside one (default 60 s).
	IdleTimeout time.Duration
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Config) adminPath() string {
	if c.DirectorAdminPath == "" {
		return filepath.Join(c.BaseDir, "director-admin")
	}
	return c.DirectorAdminPath
}

func (c *Config) maxConns() int {
	if c.MaxConnections <= 0 {
		return 64
	}
	return c.MaxConnections
}

func (c *Config) idle() time.Duration {
	if c.IdleTimeout <= 0 {
		return 60 * time.Second
	}
	return c.IdleTimeout
}

// Server is the doveadm HTTP API server.
type Server struct {
	svc Services
	reg *registry
	cfg atomic.Pointer[Config]
	api []byte // GET /doveadm/v1 body, built once

	// base is the context of every command; cancelled when Shutdown gives up waiting.
	base   context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]bool // value: idle, waiting for a request
	pages     map[string]Page   // GET paths beside the API (Mount)
	shutdown  bool
	wg        sync.WaitGroup
}

// NewServer builds a server over svc.
func NewServer(cfg Config, svc Services) *Server {
	s := &Server{svc: svc, reg: newRegistry(), listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]bool{}}
	s.api = s.reg.catalogueBody()
	s.base, s.cancel = context.WithCancel(context.Background())
	s.SetConfig(cfg)
	return s
}

// SetConfig swaps the settings; requests already running keep the old ones.
func (s *Server) SetConfig(cfg Config) {
	c := cfg
	c.AllowedCommands = append([]string(nil), cfg.AllowedCommands...)
	s.cfg.Store(&c)
}

func (s *Server) config() *Config { return s.cfg.Load() }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("doveadm: server closed")

// ServeTLS serves HTTPS on l.
func (s *Server) ServeTLS(l net.Listener, tc *tls.Config) error {
	return s.Serve(tls.NewListener(l, tc))
}

// Serve accepts connections on l until Shutdown. At most MaxConnections are served at
// once; further clients wait in the listen queue.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	sem := make(chan struct{}, s.config().maxConns())
	for {
		sem <- struct{}{}
		nc, err := netx.Accept(l)
		if err != nil {
			<-sem
			s.mu.Lock()
			closed := s.shutdown
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			return err
		}
		if !s.track(nc) {
			nc.Close()
			<-sem
			return ErrServerClosed
		}
		go func() {
			defer func() { <-sem }()
			defer s.untrack(nc)
			s.serveConn(nc)
		}()
	}
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[nc] = false
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, lets running requests finish until ctx ends, then closes
// whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	for c, idle := range s.conns {
		if idle {
			c.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// setIdle marks a connection as waiting for its next request (idle ones are closed at
// once by Shutdown). It reports false if the server is shutting down.
func (s *Server) setIdle(nc net.Conn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[nc] = idle
	return !s.shutdown
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}
