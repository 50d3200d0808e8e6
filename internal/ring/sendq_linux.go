package ring

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendQueue returns the bytes written to c's socket that the peer has not acknowledged yet
// (SIOCOUTQ): what DIRECTOR-LIST shows as buffered, as Dovecot shows its unsent output.
func sendQueue(c net.Conn) int64 {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	if rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }) != nil || err != nil {
		return 0
	}
	return int64(n)
}
