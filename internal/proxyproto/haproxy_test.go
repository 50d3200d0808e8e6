package proxyproto

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// Debian's HAProxy in TCP mode, with send-proxy and send-proxy-v2, in front of a listener
// that reads the header: what it reads is the address the client connected from and the one
// it connected to, and the client's first bytes come after it untouched.
func TestRealHAProxy(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv(testenv.RequireEnv) == "1" {
			t.Fatalf("haproxy is not installed (%s=1)", testenv.RequireEnv)
		}
		t.Skip("haproxy is not installed")
	}
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
			dir := t.TempDir()
			conf := fmt.Sprintf(`global
	maxconn 10
defaults
	mode tcp
	timeout connect 5s
	timeout client 10s
	timeout server 10s
frontend f
	bind %s:%d
	default_backend b
backend b
	server s %s %s
`, front, frontPort, l.Addr(), mode)
			cfg := filepath.Join(dir, "haproxy.cfg")
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "-db", "-f", cfg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()

			// Connect from the client's own address once HAProxy listens.
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}
			var c net.Conn
			for deadline := time.Now().Add(20 * time.Second); ; {
				if c, err = d.Dial("tcp", netip.AddrPortFrom(front, uint16(frontPort)).String()); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("HAProxy never listened: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			defer c.Close()
			if _, err := c.Write([]byte("a1 CAPABILITY\r\n")); err != nil {
				t.Fatal(err)
			}
			l.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
			s, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetReadDeadline(time.Now().Add(20 * time.Second))
			h, err := Read(s)
			if err != nil {
				t.Fatal(err)
			}
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
