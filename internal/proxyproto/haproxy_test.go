package proxyproto

import (
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// Debian's HAProxy in TCP mode, with send-proxy and send-proxy-v2, in front of a listener
// that reads the header: what it reads is the address the client connected from and the one
// it connected to, and the client's first bytes come after it untouched.
func TestRealHAProxy(t *testing.T) {
	// A subnet of our own in 127/8, so parallel runs do not meet.
	base := [4]byte{127, byte(1 + rand.IntN(250)), byte(1 + rand.IntN(250)), 0}
	ipAt := func(last byte) netip.Addr { b := base; b[3] = last; return netip.AddrFrom4(b) }
	front, back, client := ipAt(1), ipAt(2), ipAt(77)

	for _, mode := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(mode, func(t *testing.T) {
			l, err := net.Listen("tcp", netip.AddrPortFrom(back, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			frontPort := testenv.FreePort(t, front)
			testenv.StartHAProxy(t, testenv.HAProxyFrontend{
				Bind: netip.AddrPortFrom(front, uint16(frontPort)), Server: l.Addr().String(), Opts: mode})
			// Connect from the client's own address.
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}
			c, err := d.Dial("tcp", netip.AddrPortFrom(front, uint16(frontPort)).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("a1 CAPABILITY\r\n")); err != nil {
				t.Fatal(err)
			}
			// StartHAProxy's probes may reach the listener too, from another address: skip them.
			l.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
			var s net.Conn
			var h Header
			for s == nil {
				a, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				a.SetReadDeadline(time.Now().Add(20 * time.Second))
				if h, err = Read(a); err != nil || h.Src.Addr() != client {
					a.Close()
					continue
				}
				s = a
			}
			defer s.Close()
			want := map[string]int{"send-proxy": 1, "send-proxy-v2": 2}[mode]
			if h.Version != want || h.Local || h.Src != netip.MustParseAddrPort(c.LocalAddr().String()) ||
				h.Dst != netip.AddrPortFrom(front, uint16(frontPort)) {
				t.Fatalf("header %+v; client %v -> %v:%d", h, c.LocalAddr(), front, frontPort)
			}
			buf := make([]byte, 15)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "a1 CAPABILITY\r\n" {
				t.Fatalf("after the header: %q, %v", buf, err)
			}
		})
	}
}
