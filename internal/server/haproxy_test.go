package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/proxyproto"
	"github.com/usher-mail/usher/internal/testenv"
)

// TestHAProxyReload: a reload re-applies haproxy_trusted_networks and haproxy_timeout to the
// running haproxy = yes listeners. The client is refused before the reload and trusted after
// it; the timeout goes from an hour to 1 s, so an admitted client that sends no header is cut
// well within the test's deadline only if the new value is in force.
func TestHAProxyReload(t *testing.T) {
	net3 := [4]byte{127, byte(1 + rand.IntN(250)), byte(1 + rand.IntN(250)), 10}
	ip := netip.AddrFrom4(net3)
	net3[3] = 20
	client := netip.AddrFrom4(net3)
	port := testenv.FreePort(t, ip)
	dir := t.TempDir()
	conf := func(trusted, timeout string) string {
		return fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap
director_mail_servers = %[1]s
usher_health_check = none
haproxy_trusted_networks = %[3]s
haproxy_timeout = %[4]s
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
  inet_listener haproxy {
    port = %[5]d
    haproxy = yes
  }
}
`, ip, dir, trusted, timeout, port)
	}
	path := filepath.Join(dir, "usher.conf")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(conf(ip.String()+"/32", "1 hours"))
	s, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	srv, err := New(path, s, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(); srv.Wait() })

	dial := func() net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: client.AsSlice()}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	// closed reports that the server closed c without sending anything.
	closed := func(c net.Conn) bool {
		n, err := c.Read(make([]byte, 64))
		return n == 0 && err != nil && !os.IsTimeout(err)
	}
	header := proxyproto.AppendV2(nil, netip.MustParseAddrPort("192.0.2.7:40000"), netip.AddrPortFrom(ip, uint16(port)), false, "")

	// Not trusted: closed unread, however good the header.
	c := dial()
	c.Write(header)
	if !closed(c) {
		t.Fatal("an untrusted client was not refused")
	}
	if !strings.Contains(logs.String(), "Client not trusted") {
		t.Errorf("no refusal logged:\n%s", logs)
	}

	write(conf(client.String()+"/32", "1 secs"))
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	// Trusted now: the header is taken and the greeting follows.
	c = dial()
	c.Write(header)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("trusted client after the reload: %q %v", line, err)
	}
	// No header: cut after the new timeout, not the old hour.
	c = dial()
	if !closed(c) {
		t.Fatal("a client sending no header was not cut within 20 s: haproxy_timeout not reloaded")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "haproxy: Client timed out") {
		if time.Now().After(deadline) {
			t.Fatalf("no timeout logged:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
