package ring

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds TLS plus the secret handshake, so a silent
// client cannot hold an accept goroutine.
const handshakeTimeout = 5 * time.Second

// mux shares one listener between raft and the ring RPC. Every connection
// is authenticated (see auth.go) before its first protocol byte is read.
type mux struct {
	ln     net.Listener
	self   string // own ring address, sent when dialing
	secret []byte
	tls    *tls.Config
	log    *slog.Logger
	peers  *peerTable

	raftConns chan net.Conn
	rpcConns  chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newMux(ln net.Listener, self string, secret []byte, tlsCfg *tls.Config, log *slog.Logger, peers *peerTable) *mux {
	m := &mux{
		ln: ln, self: self, secret: secret, tls: tlsCfg, log: log, peers: peers,
		raftConns: make(chan net.Conn), rpcConns: make(chan net.Conn),
		done: make(chan struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			m.log.Warn("ring: accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.serve(c)
		}()
	}
}

func (m *mux) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
		if err := tc.Handshake(); err != nil {
			m.log.Warn("ring: TLS handshake failed", "remote", c.RemoteAddr(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	peer, proto, err := serverHandshake(c, m.secret)
	if err != nil {
		m.log.Warn("ring: rejected connection", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	cc := m.peers.count(peer, c)
	var ch chan net.Conn
	switch proto {
	case protoRaft:
		ch = m.raftConns
	case protoRPC:
		ch = m.rpcConns
	default:
		m.log.Warn("ring: unknown protocol", "remote", c.RemoteAddr(), "proto", proto)
		c.Close()
		return
	}
	select {
	case ch <- cc:
	case <-m.done:
		c.Close()
	}
}

// dial opens an authenticated connection to addr for proto.
func (m *mux) dial(addr string, proto byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		m.peers.failed(addr)
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(min(timeout, handshakeTimeout)))
	if m.tls != nil {
		cfg := m.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			m.peers.failed(addr)
			return nil, err
		}
		c = tc
	}
	if err := clientHandshake(c, m.secret, m.self, proto); err != nil {
		c.Close()
		m.peers.failed(addr)
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return m.peers.count(addr, c), nil
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

// wait returns once every accept goroutine has ended.
func (m *mux) wait() { m.wg.Wait() }

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

// Close is a no-op: raft closes its transport on shutdown, but the listener
// belongs to the Ring and still serves RPC until Ring.Close.
func (l raftLayer) Close() error { return nil }

func (l raftLayer) Addr() net.Addr { return l.m.ln.Addr() }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.m.done:
		return nil, errors.New("ring: closed")
	default:
	}
	return l.m.dial(string(addr), protoRaft, timeout)
}
