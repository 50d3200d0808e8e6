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
	// MaxConnections bounds concurrent HTTP connections (default 64). When
	// it is reached, a new connection takes the place of the one that has
	// waited longest for its request to arrive; one running a command is
	// never cut. Only when every connection runs a command is the newcomer
	// answered 503.
	MaxConnections int
	// IdleTimeout bounds the wait for a request and each read of a body (default 60 s).
	IdleTimeout time.Duration
	// HeaderTimeout bounds the request line and headers once a request's
	// first byte has arrived (default 10 s), so a client sending them a
	// byte at a time cannot hold a connection for long.
	HeaderTimeout time.Duration
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

func (c *Config) headerTimeout() time.Duration {
	if c.HeaderTimeout <= 0 {
		return 10 * time.Second
	}
	return c.HeaderTimeout
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
	conns     map[net.Conn]time.Time // value: since when it waits for (or reads) a request; zero while a command runs
	pages     map[string]Page        // GET paths beside the API (Mount)
	shutdown  bool
	wg        sync.WaitGroup
}

// NewServer builds a server over svc.
func NewServer(cfg Config, svc Services) *Server {
	s := &Server{svc: svc, reg: newRegistry(), listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]time.Time{}}
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

// Serve accepts connections on l until Shutdown. At most MaxConnections are
// served at once (see Config.MaxConnections for who gives way).
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
	for {
		nc, err := netx.Accept(l)
		if err != nil {
			s.mu.Lock()
			closed := s.shutdown
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			return err
		}
		ok, full := s.track(nc)
		if !ok {
			nc.Close()
			return ErrServerClosed
		}
		if full {
			go refuseBusy(nc)
			continue
		}
		go func() {
			defer s.untrack(nc)
			s.serveConn(nc)
		}()
	}
}

// track adds nc, making room if the server is full by closing the
// connection that has waited longest for its request. full: there was no
// such connection, nc is not tracked.
func (s *Server) track(nc net.Conn) (ok, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false, false
	}
	if len(s.conns) >= s.config().maxConns() {
		var oldest net.Conn
		var since time.Time
		for c, t := range s.conns {
			if !t.IsZero() && (oldest == nil || t.Before(since)) {
				oldest, since = c, t
			}
		}
		if oldest == nil {
			return true, true
		}
		oldest.Close() // its goroutine ends and untracks it
		delete(s.conns, oldest)
	}
	s.conns[nc] = time.Now()
	s.wg.Add(1)
	return true, false
}

// refuseBusy answers a connection for which there is no room.
func refuseBusy(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(time.Second))
	nc.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	nc.Close()
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
	for c, since := range s.conns {
		if !since.IsZero() {
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

// setIdle marks a connection as waiting for its next request (idle ones are
// closed at once by Shutdown, and the longest waiting one makes room for a
// new connection). It reports false if the server is shutting down or the
// connection was closed to make room.
func (s *Server) setIdle(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[nc]; !ok {
		return false
	}
	s.conns[nc] = time.Now()
	return !s.shutdown
}

// setBusy marks a connection as running a request, so it is not closed to
// make room; false if it already was.
func (s *Server) setBusy(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[nc]; !ok {
		return false
	}
	s.conns[nc] = time.Time{}
	return true
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}
