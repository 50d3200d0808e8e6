package admin

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/tabescape"
)

const (
	greeting = "VERSION\tdirector-doveadm\t1\t0"
	// maxLine bounds one command line; the longest legitimate one is a
	// USER-KICK-ALT with a long value.
	maxLine = 64 * 1024
	// idle bounds how long a connection may sit without a command.
	idle = 10 * time.Minute
)

// Server accepts director-admin connections.
type Server struct {
	dir  Director
	ring Ring
	log  *slog.Logger
	// Limiter bounds connections from the listeners (the in-process pipe
	// is not counted); set it before Serve.
	Limiter *netx.Limiter

	observer atomic.Pointer[Observer]

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	lns   []net.Listener
	wg    sync.WaitGroup
}

// NewServer returns a server executing commands against dir and ring.
func NewServer(dir Director, ring Ring, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{dir: dir, ring: ring, log: log, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections until l is closed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.lns = append(s.lns, l)
	s.mu.Unlock()
	for {
		c, err := netx.Accept(l)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		slot, ok := s.Limiter.Admit(netx.PeerIP(c))
		if !ok {
			netx.Refuse(c, "") // the protocol has no words for it
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer slot.Release()
			s.ServeConn(c)
		}()
	}
}

// Close stops listening and closes open connections.
func (s *Server) Close() {
	s.mu.Lock()
	for _, l := range s.lns {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Pipe returns the client end of an in-process connection, for the HTTP
// API's default (no socketPath) director.
func (s *Server) Pipe() net.Conn {
	a, b := net.Pipe()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.ServeConn(b)
	}()
	return a
}

// ServeConn runs the protocol on one connection and closes it.
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	w := bufio.NewWriter(c)
	if _, err := io.WriteString(w, greeting+"\n"); err != nil || w.Flush() != nil {
		return
	}
	r := bufio.NewReaderSize(c, 4096)
	handshaken := false
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		line, err := readLine(r)
		if err != nil {
			return
		}
		if !handshaken {
			if !compatibleVersion(line) {
				s.log.Warn("director-admin: incompatible handshake", "remote", c.RemoteAddr().String(), "line", line)
				return
			}
			handshaken = true
			continue
		}
		reply, ok := s.exec(context.Background(), line)
		s.observe(line, reply)
		if !ok {
			s.log.Warn("director-admin: invalid command, closing", "remote", c.RemoteAddr().String())
			return
		}
		for _, l := range reply {
			w.WriteString(l)
			w.WriteByte('\n')
		}
		if w.Flush() != nil {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxLine {
			return "", errLineTooLong
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

// compatibleVersion accepts the doveadm side of the handshake: same service
// name and major version, any minor.
func compatibleVersion(line string) bool {
	f := tabescape.Split(line)
	return len(f) >= 4 && f[0] == "VERSION" && f[1] == "director-doveadm" && f[2] == "1"
}
