package proxyproto

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Policy is what a listener with haproxy = yes applies to each connection, as Dovecot 2.3's
// master service does: a peer outside the trusted networks (haproxy_trusted_networks) is
// closed at once, and a trusted one must send its header within the timeout
// (haproxy_timeout). Every refusal is logged with the peer's address. One Policy may serve
// many listeners; Set changes it for the connections accepted afterwards (reload).
type Policy struct {
	log *slog.Logger
	cur atomic.Pointer[policyValues]
}

type policyValues struct {
	trusted []netip.Prefix
	timeout time.Duration // 0: no bound of its own
}

// NewPolicy returns a policy; log nil means slog.Default().
func NewPolicy(trusted []netip.Prefix, timeout time.Duration, log *slog.Logger) *Policy {
	if log == nil {
		log = slog.Default()
	}
	p := &Policy{log: log}
	p.Set(trusted, timeout)
	return p
}

// Set replaces the trusted networks and the timeout.
func (p *Policy) Set(trusted []netip.Prefix, timeout time.Duration) {
	p.cur.Store(&policyValues{trusted: slices.Clone(trusted), timeout: timeout})
}

// peerIP is nc's peer address, IPv4-mapped IPv6 unmapped; invalid for a non-TCP peer.
func peerIP(nc net.Conn) netip.Addr {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Admit reports whether nc's peer may send a header; when not, it logs the refusal and closes
// nc. It does no I/O, so an accept loop may call it.
func (p *Policy) Admit(nc net.Conn) bool {
	ip := peerIP(nc)
	for _, n := range p.cur.Load().trusted {
		if ip.IsValid() && n.Contains(ip) {
			return true
		}
	}
	p.log.Warn("haproxy: Client not trusted", "rip", ip.String())
	nc.Close()
	return false
}

// ReadHeader reads the header from nc within the policy's timeout, on the connection's own
// goroutine (never an accept loop: a slow peer must stall nobody else). The read deadline is
// cleared afterwards. A failure is logged; the caller closes nc.
func (p *Policy) ReadHeader(nc net.Conn) (Header, error) {
	if t := p.cur.Load().timeout; t > 0 {
		_ = nc.SetReadDeadline(time.Now().Add(t))
	}
	h, err := Read(nc)
	_ = nc.SetReadDeadline(time.Time{})
	if err != nil {
		rip := peerIP(nc).String()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			p.log.Error("haproxy: Client timed out", "rip", rip)
		case errors.Is(err, ErrNotProxy) || errors.Is(err, ErrInvalid):
			p.log.Error("haproxy: Client disconnected: invalid PROXY protocol header", "rip", rip, "err", err)
		default:
			p.log.Info("haproxy: Client disconnected", "rip", rip, "err", err)
		}
	}
	return h, err
}

// Addrs are a connection's client and local addresses after its header: the carried ones, or
// the socket's own when the header carries none (LOCAL, UNKNOWN).
func (h Header) Addrs(remote, local netip.AddrPort) (netip.AddrPort, netip.AddrPort) {
	if h.Local {
		return remote, local
	}
	return h.Src, h.Dst
}

// Listener takes PROXY headers on the connections it accepts, for servers that own their
// connections' goroutines (the doveadm HTTP API, LMTP): Accept refuses untrusted peers without
// I/O and returns a Conn whose header is read lazily, by the first use of the connection on
// the server's goroutine for it.
type Listener struct {
	net.Listener
	Policy *Policy
}

// Accept returns the next connection from a trusted peer.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.Policy.Admit(nc) {
			return &Conn{Conn: nc, policy: l.Policy}, nil
		}
	}
}

// Conn is an accepted connection whose PROXY header is read by its first Read, Write,
// RemoteAddr or LocalAddr (or Handshake); from then on its addresses are the carried ones.
// A connection whose header fails is closed and every use of it fails.
type Conn struct {
	net.Conn
	policy *Policy

	once          sync.Once
	hdr           Header
	err           error
	remote, local net.Addr

	mu       sync.Mutex
	deadline time.Time // the caller's read deadline, restored after the header
}

// Handshake reads the header, once; it returns the error every later use returns.
func (c *Conn) Handshake() error {
	c.once.Do(func() {
		c.remote, c.local = c.Conn.RemoteAddr(), c.Conn.LocalAddr()
		c.hdr, c.err = c.policy.ReadHeader(c.Conn)
		if c.err != nil {
			c.Conn.Close()
			return
		}
		c.mu.Lock()
		_ = c.Conn.SetReadDeadline(c.deadline)
		c.mu.Unlock()
		if !c.hdr.Local {
			c.remote, c.local = net.TCPAddrFromAddrPort(c.hdr.Src), net.TCPAddrFromAddrPort(c.hdr.Dst)
		}
	})
	return c.err
}

// NetConn is the accepted connection itself, for a server that needs the socket (a relay that
// splices); after Handshake its next bytes are the client's own.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Header is what the header said; the zero Header before Handshake or after its failure.
func (c *Conn) Header() Header {
	if c.Handshake() != nil {
		return Header{}
	}
	return c.hdr
}

func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// RemoteAddr is the client's address the header carried (the socket's peer for LOCAL).
func (c *Conn) RemoteAddr() net.Addr {
	_ = c.Handshake()
	return c.remote
}

// LocalAddr is the address the client connected to, as the header carried it.
func (c *Conn) LocalAddr() net.Addr {
	_ = c.Handshake()
	return c.local
}

// SetDeadline and SetReadDeadline are remembered, so that the header's own deadline does not
// replace the caller's.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// CloseWrite half-closes a TCP connection (servers use it to linger before closing).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
