package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/testenv"
)

// TestAdminListenAddrs: without an address of its own the TCP
// director-admin listener binds only loopback, whatever `listen` says; an
// explicit address is kept and flagged when it is not loopback.
func TestAdminListenAddrs(t *testing.T) {
	for _, c := range []struct {
		global, explicit []string
		want             []string
		exposed          bool
	}{
		{global: []string{"*", "::"}, want: []string{"127.0.0.1:9091", "[::1]:9091"}},
		{global: []string{"*"}, want: []string{"127.0.0.1:9091"}},
		{global: []string{"192.0.2.1", "127.0.0.10"}, want: []string{"127.0.0.10:9091"}},
		{global: []string{"192.0.2.1"}, want: []string{"127.0.0.1:9091"}},
		{global: []string{"*"}, explicit: []string{"127.0.0.5"}, want: []string{"127.0.0.5:9091"}},
		{global: []string{"127.0.0.1"}, explicit: []string{"*"}, want: []string{"0.0.0.0:9091"}, exposed: true},
		{global: []string{"*"}, explicit: []string{"192.0.2.1"}, want: []string{"192.0.2.1:9091"}, exposed: true},
	} {
		got, exposed := adminListenAddrs(c.global, &config.InetListener{Name: "director-admin", Address: c.explicit, Port: 9091})
		if !slices.Equal(got, c.want) || exposed != c.exposed {
			t.Errorf("listen %v address %v: %v %v, want %v %v", c.global, c.explicit, got, exposed, c.want, c.exposed)
		}
	}
}

// TestAPISocketPath: the API's socketPath reaches only this director's own
// admin sockets and its ring's admin port; anything else is refused without
// a connection (it was a port-scan oracle).
func TestAPISocketPath(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := probe.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	s := config.Defaults()
	s.DirectorServers = []string{"127.0.0.21:9090", "127.0.0.22:9090"}
	srv := &Server{settings: s, adminAt: []string{"/run/usher/director-admin", "127.0.0.21:9091"}}
	for path, want := range map[string]bool{
		"/run/usher/director-admin": true, "127.0.0.21:9091": true, "127.0.0.22:9091": true,
		"127.0.0.23:9091": false, "127.0.0.22:9092": false, "/etc/passwd": false,
		probe.Addr().String(): false,
	} {
		if got := srv.adminAllowed(path); got != want {
			t.Errorf("%s: allowed %v", path, got)
		}
	}
	if _, err := (apiServices{srv}).DialAdmin(context.Background(), probe.Addr().String()); err == nil {
		t.Error("dialed an arbitrary address")
	}
	select {
	case <-accepted:
		t.Error("the arbitrary address saw a connection")
	default:
	}
}

// TestBackendTLS: backends' certificates are verified against
// ssl_client_ca_file, for backend_ssl_name or else the backend's IP, by the
// proxies (login.ClientTLS) and by the health checks alike.
func TestBackendTLS(t *testing.T) {
	certPEM, keyPEM, _ := testenv.TestCertFor(t, netip.MustParseAddr("127.0.0.1"))
	otherCA, _, _ := testenv.TestCertFor(t, netip.MustParseAddr("127.0.0.1"))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// An IMAP greeting after the handshake, for the health check.
			go func() { c.Write([]byte("* OK ready\r\n")); c.Close() }()
		}
	}()
	dir := t.TempDir()
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherFile, otherCA, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := netip.MustParseAddrPort(l.Addr().String())
	for _, c := range []struct {
		ca, name string
		ok       bool
	}{{caFile, "", true}, {caFile, "localhost", true}, {caFile, "other.test", false}, {"", "", false}, {otherFile, "", false}} {
		s := config.Defaults()
		s.SSLClientCAFile, s.BackendSSLName = c.ca, c.name
		cfg, err := backendTLS(s)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = login.ClientTLS(nc, cfg, dest)
		nc.Close()
		if (err == nil) != c.ok {
			t.Errorf("proxy: ca %q name %q: %v", c.ca, c.name, err)
		}
		s.BackendSSL, s.BackendIMAPPort = "yes", int(dest.Port())
		s.UsherHealthCheck, s.UsherHealthCheckTimeout = "imap", 10*time.Second
		p := healthConfig(s, netip.Addr{}, cfg, 0, true).Probe
		if err := p.Check(context.Background(), dest.Addr()); (err == nil) != c.ok {
			t.Errorf("health check: ca %q name %q: %v", c.ca, c.name, err)
		}
	}
	s := config.Defaults()
	s.SSLClientCAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := backendTLS(s); err == nil {
		t.Error("a missing ssl_client_ca_file was accepted")
	}
}

// TestUnixListenerOwner: a unix_listener's mode, user and group are
// applied (they were accepted and ignored: the admin socket was always
// 0600 and root's).
func TestUnixListenerOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	grp, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	ln, err := listenUnixAt(dir, config.UnixListener{Name: "director-admin", Mode: "0660", User: "nobody", Group: grp.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(filepath.Join(dir, "director-admin"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || strconv.Itoa(int(st.Uid)) != nobody.Uid || strconv.Itoa(int(st.Gid)) != nobody.Gid {
		t.Errorf("mode %v uid %d gid %d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if _, err := listenUnixAt(dir, config.UnixListener{Name: "x", User: "no-such-user-usher", File: "f.conf", Line: 7}); err == nil || !strings.Contains(err.Error(), "f.conf:7:") {
		t.Errorf("unknown user: %v", err)
	}
}
