package netx

import (
	"context"
	"net"
	"syscall"
	"time"
)

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
