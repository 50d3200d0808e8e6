package testenv

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lineConn is a minimal line-based client for the text protocols under test.
type lineConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dialFrom connects from a chosen loopback source address, so tests know the IP who must show.
func dialFrom(t testing.TB, src netip.Addr, addr string) *lineConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (l *lineConn) send(s string) {
	l.t.Helper()
	if _, err := l.c.Write([]byte(s + "\r\n")); err != nil {
		l.t.Fatalf("write %q: %v", s, err)
	}
}

func (l *lineConn) line() string {
	l.t.Helper()
	// Bounds only a hung server, so a broken backend fails instead of blocking the suite.
	_ = l.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// until reads lines until one starts with prefix and returns it together with what came before.
func (l *lineConn) until(prefix string) (string, []string) {
	l.t.Helper()
	var seen []string
	for {
		s := l.line()
		if strings.HasPrefix(s, prefix) {
			return s, seen
		}
		seen = append(seen, s)
	}
}

// requireTool finds an external client, skipping (or failing under CI) when it is missing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}
