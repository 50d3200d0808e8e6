// Package netx holds the network helpers every server of usher shares.
package netx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Accept waits for the next connection on l. Errors that pass (out of file
// descriptors, an aborted handshake, a timeout) are waited out with a
// growing pause, as net/http does, instead of ending the listener: a
// director that hit its descriptor limit must serve again once sessions
// end. It returns the error only for a closed listener or one that cannot
// accept at all.
func Accept(l net.Listener) (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) || !passing(err) {
			return nil, err
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		time.Sleep(pause)
	}
}

func passing(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EINTR)
}

// Limits are a service's connection ceilings.
type Limits struct {
	Total int // connections at once, all clients together; 0: no limit
	PerIP int // connections at once from one client IP; 0: no limit
	// Exempt reports client IPs not held to PerIP: trusted proxies carry
	// many clients on one address.
	Exempt func(netip.Addr) bool
}

// Limiter counts one service's open connections, in all and per client IP.
// Every listener of the service shares it, so imap and imaps count together.
// The zero value has no limits; Set gives it some.
type Limiter struct {
	Service string // named in the log line about refusals
	Log     *slog.Logger

	lim   atomic.Pointer[Limits]
	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int

	refused atomic.Int64 // since the last log line
	lastLog atomic.Int64 // unix nanoseconds
}

// Set changes the ceilings (at reload); connections already open stay.
func (l *Limiter) Set(lim Limits) { l.lim.Store(&lim) }

// Slot is an admitted connection's place in a Limiter; Release gives it back.
type Slot struct {
	l  *Limiter
	ip netip.Addr // counted per IP; invalid when not
}

// Admit takes a slot for a connection from ip (an invalid ip, e.g. a unix
// socket's, counts only in the total). ok is false when a ceiling is
// reached; the caller answers in its protocol's words and closes. A nil
// Limiter admits everything.
func (l *Limiter) Admit(ip netip.Addr) (Slot, bool) {
	if l == nil {
		return Slot{}, true
	}
	lim := l.lim.Load()
	if lim == nil {
		lim = &Limits{}
	}
	perIP := lim.PerIP > 0 && ip.IsValid() && (lim.Exempt == nil || !lim.Exempt(ip))
	l.mu.Lock()
	why := ""
	switch {
	case lim.Total > 0 && l.total >= lim.Total:
		why = "service connection limit"
	case perIP && l.perIP[ip] >= lim.PerIP:
		why = "per-IP connection limit"
	}
	if why != "" {
		l.mu.Unlock()
		l.logRefusal(why, ip, lim)
		return Slot{}, false
	}
	l.total++
	s := Slot{l: l}
	if perIP {
		if l.perIP == nil {
			l.perIP = map[netip.Addr]int{}
		}
		l.perIP[ip]++
		s.ip = ip
	}
	l.mu.Unlock()
	return s, true
}

// Release gives the slot back; the zero Slot does nothing.
func (s Slot) Release() {
	l := s.l
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if s.ip.IsValid() {
		if l.perIP[s.ip]--; l.perIP[s.ip] <= 0 {
			delete(l.perIP, s.ip)
		}
	}
}

// logRefusal logs refusals at most every 10 s, with how many there were, so
// a flood cannot turn into a flood of log lines.
func (l *Limiter) logRefusal(why string, ip netip.Addr, lim *Limits) {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(10*time.Second) || !l.lastLog.CompareAndSwap(last, now) || l.Log == nil {
		return
	}
	l.refused.Add(-n)
	l.Log.Warn("connections refused: "+why, "service", l.Service, "refused", n, "last_ip", ip.String(),
		"limit", lim.Total, "limit_per_ip", lim.PerIP)
}

// PeerIP is the client IP of an accepted connection; invalid for a unix socket.
func PeerIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// Refuse writes text (a protocol's "too many connections" line, or nothing)
// to a connection that was not admitted and closes it. The write is bounded:
// a fresh socket's send buffer takes a line at once, and a client that reads
// nothing is not waited for.
func Refuse(c net.Conn, text string) {
	if text != "" {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(text))
	}
	c.Close()
}

// Keepalive probing of client connections: a client that vanished without a FIN (a laptop
// closed, a NAT that forgot the flow) is noticed after Idle + Count*Interval and its
// session ends, as it would with Go's own defaults.
const (
	KeepaliveIdle     = 15 * time.Second
	KeepaliveInterval = 15 * time.Second
	KeepaliveCount    = 9
)

// ListenTCP listens on addr with TCP keepalive set once on the listening socket. Linux
// copies a listener's socket options to every connection it accepts, so this costs four
// system calls per listener instead of four per accepted connection, which is what Go's
// net package spends when it sets keepalive itself (a measurable share of a login storm).
func ListenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // set below on the listener, inherited by accepted sockets
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = setKeepalive(int(fd)) })
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// BackendDialer dials the servers usher proxies to. No keepalive: those are on the local
// network, and a session whose client disappears is ended by the client side's keepalive,
// which closes the backend connection with it (Dovecot's proxy sets none either).
// Every caller shares one Dialer (safe for concurrent use, and not to be changed) rather
// than allocating one per login.
func BackendDialer() *net.Dialer { return backendDialer }

var backendDialer = &net.Dialer{KeepAlive: -1}
