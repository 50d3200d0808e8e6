package netx

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The listener's keepalive settings must reach every accepted connection: ListenTCP relies on
// the kernel copying them, and tells Go not to set them per connection.
func TestAcceptedConnInheritsKeepalive(t *testing.T) {
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int{
		"SO_KEEPALIVE":  {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":  {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(KeepaliveIdle / time.Second)},
		"TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(KeepaliveInterval / time.Second)},
		"TCP_KEEPCNT":   {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepaliveCount},
		"TCP_NODELAY":   {unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	}
	rc.Control(func(fd uintptr) {
		for name, o := range want {
			v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil || v != o[2] {
				t.Errorf("%s = %d (%v), want %d", name, v, err, o[2])
			}
		}
	})
}
