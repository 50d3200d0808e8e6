package sieve

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"

	"github.com/usher-mail/usher/internal/testenv"
)

const sieveLine = `"SIEVE" "fileinto reject envelope encoded-character vacation subaddress comparator-i;ascii-numeric relational regex imap4flags copy include variables body enotify environment mailbox date index ihave duplicate mime foreverypart extracttext"`

// caps is the pre-login list for an untrusted loopback client without TLS, then the OK.
func caps(ok string) []string {
	return []string{`"IMPLEMENTATION" "Dovecot Pigeonhole"`, sieveLine, `"NOTIFY" "mailto"`,
		`"SASL" "PLAIN LOGIN"`, `"VERSION" "1.0"`, `OK "` + ok + `"`}
}

func TestPreLoginCommands(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send("CAPABILITY")
	c.expect(caps("Capability completed.")...)
	c.send("noop")
	c.expect(`OK "NOOP Completed"`)
	c.send(`NOOP "t\"ag"`)
	c.expect(`OK (TAG "t\"ag") "Done"`)
	c.send("NOOP {3+}\r\nabc")
	c.expect(`OK (TAG "abc") "Done"`)
	c.send("STARTTLS")
	c.expect(`NO "TLS support isn't enabled."`)
	c.send("XCLIENT ADDR=192.0.2.1")
	c.expect(`NO "You are not from trusted IP"`)
	c.send(`AUTHENTICATE "FOO"`)
	c.expect(`NO "Unsupported authentication mechanism."`)
	c.send("LOGOUT")
	c.expect(`OK "Logout completed."`)
	c.expectEOF()
	if h.stats.Count("command:NOOP") != 3 {
		t.Error("NOOP not counted")
	}
}

func TestAuthenticateProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
	c.send("LISTSCRIPTS")
	c.expect(`"test" ACTIVE`, `OK "Listscripts completed."`)
	c.send("LOGOUT")
	c.expect(`OK "Logout completed."`)
	c.expectEOF()

	sess := waitDone(t, h.sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "sieve" || sess.Info.Backend.Port() != uint16(h.backend.port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("LISTSCRIPTS\r\nLOGOUT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.backend.received()
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "XCLIENT ADDR=127.0.0.1 PORT=") ||
		!strings.HasSuffix(lines[0], " SESSION="+sess.Info.ID+" TTL=4") ||
		lines[1] != `AUTHENTICATE "PLAIN" "AHUxAHBhc3M="` {
		t.Errorf("backend got %q", lines)
	}
	if h.pen.Count("succeed") != 1 || h.stats.Count("login") != 1 || h.stats.Count("auth_success") != 1 {
		t.Error("penalties or stats not counted")
	}
}

func TestAuthenticateForms(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	for _, tc := range []struct{ name, send, cont string }{
		{"literal IR", "AUTHENTICATE \"PLAIN\" {12+}\r\nAHUxAHBhc3M=", ""},
		{"sync literal IR", "AUTHENTICATE {5}\r\nplain {12}\r\nAHUxAHBhc3M=", ""},
		{"quoted continuation", `AUTHENTICATE "PLAIN"`, `"AHUxAHBhc3M="`},
		{"literal continuation", `AUTHENTICATE "PLAIN"`, "{12+}\r\nAHUxAHBhc3M="},
	} {
		c := h.dial()
		c.expect(caps("Dovecot ready.")...)
		c.send(tc.send)
		if tc.cont != "" {
			c.expect(`""`)
			c.send(tc.cont)
		}
		if got := c.line(); got != `OK "Logged in."` {
			t.Errorf("%s: got %q", tc.name, got)
		}
	}
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "LOGIN" "dTE="`)
	c.expect(`"UGFzc3dvcmQ6"`)
	c.send(`"cGFzcw=="`)
	c.expect(`OK "Logged in."`)
	if got := len(h.sessions.All()); got != 5 {
		t.Errorf("%d sessions", got)
	}
}

func TestAuthenticateErrors(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN"`)
	c.expect(`""`)
	c.send(`"*"`)
	c.expect(`NO "Authentication aborted by client."`)
	c.send(`AUTHENTICATE "PLAIN"`)
	c.expect(`""`)
	c.send(`*`)
	c.expect(`NO "Invalid AUTHENTICATE client response."`)
	c.send(`AUTHENTICATE "PLAIN"`)
	c.expect(`""`)
	c.send(`"!!!"`)
	c.expect(`NO "Invalid base64 in response"`)
	c.send(`AUTHENTICATE "LOGIN"`)
	c.expect(`"VXNlcm5hbWU6"`)
	c.send(`"dTE="`)
	c.expect(`"UGFzc3dvcmQ6"`)
	c.send(`"*"`)
	c.expect(`NO "Authentication aborted by client."`)
	c.send(`AUTHENTICATE "PLAIN" "dXNlcg=="`)
	c.expect(`NO "Authentication failed."`)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHdyb25n"`)
	c.expect(`NO "Authentication failed."`)
	if ev := h.pen.Events(); h.pen.Count("fail") != 2 || ev[len(ev)-1].Password != "wrong" {
		t.Errorf("penalties %+v", ev)
	}
	c.send(`AUTHENTICATE "PLAIN" "AGJ1c3kAcGFzcw=="`)
	c.expect(`NO (TRYLATER) "Mailbox is locked."`)
	if h.pen.Count("fail") != 2 {
		t.Error("a locked mailbox is not an auth failure")
	}
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
}

func TestDeadBackendAndTempFail(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := newHarness(t, Config{Config: login.Config{BackendPort: port}}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`NO (TRYLATER) "Account is temporarily unavailable."`)
	h.router.SetErr(logintest.TempFail)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expectPrefix(`NO (TRYLATER) "Temporary authentication failure. [usher.test:`)
	if n := len(h.sessions.All()); n != 0 || h.pen.Count("fail") != 0 {
		t.Errorf("%d sessions, penalties %+v", n, h.pen.Events())
	}
}

func TestBadGreeting(t *testing.T) {
	be := newFakeBackend(t, `BYE "go away"`)
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`NO (TRYLATER) "Account is temporarily unavailable."`)
}

func TestBackendWithoutXCLIENT(t *testing.T) {
	be := newFakeBackend(t, `"SASL" "PLAIN"`)
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
	if got := be.received(); len(got) != 1 || !strings.HasPrefix(got[0], "AUTHENTICATE") {
		t.Errorf("backend got %q", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`NOOP "` + strings.Repeat("x", 200) + `"`)
	c.expect(`BYE "Input buffer full, aborting"`)
	c.expectEOF()

	c = h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send("NOOP {101+}")
	c.expect(`BYE "Input buffer full, aborting"`)
	c.expectEOF()

	c = h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send("")
	c.expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.send(`AUTHENTICATE PLAIN AHUxAHBhc3M=`)
	c.expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.send("HAVESPACE \"x\" 1")
	c.expect(`BYE "Too many invalid MANAGESIEVE commands."`)
	c.expectEOF()
}

func TestLoginTimeout(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{LoginTimeout: time.Millisecond}}, nil)
	c := h.dial()
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal("no BYE before the close")
		}
		if l == "BYE \"Disconnected for inactivity.\"\r\n" {
			break
		}
	}
	c.expectEOF()
}

func TestPlaintextPolicyAndSTARTTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}},
		func(_ *login.Env, s *Server) {
			s.remoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
		})
	c := h.dial()
	c.expect(`"IMPLEMENTATION" "Dovecot Pigeonhole"`, sieveLine, `"NOTIFY" "mailto"`, `"SASL" ""`,
		`"STARTTLS"`, `"VERSION" "1.0"`, `OK "Dovecot ready."`)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`NO "Plaintext authentication disabled."`)
	if len(h.router.Calls()) != 0 || len(h.pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STARTTLS must be dropped, not run under TLS.
	if _, err := c.nc.Write([]byte("STARTTLS\r\nNOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect(`OK "Begin TLS negotiation now."`)
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.br, c.nc = bufio.NewReader(tc), tc
	c.expect(caps("TLS negotiation successful.")...)
	c.send("STARTTLS")
	c.expect(`NO "TLS is already active."`)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
	c.send("LISTSCRIPTS")
	c.expect(`"test" ACTIVE`, `OK "Listscripts completed."`)
	if got := h.backend.received()[0]; !strings.HasPrefix(got, "XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=") {
		t.Errorf("XCLIENT %q", got)
	}
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedXCLIENT(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.dial()
	want := caps("Dovecot ready.")
	want = append(want[:len(want)-1], `"XCLIENT"`, want[len(want)-1])
	c.expect(want...)
	c.send("XCLIENT ADDR=nonsense")
	c.expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.send("XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=3")
	c.expect(`OK "Updated"`)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
	if got := h.backend.received()[0]; got != "XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=2" {
		t.Errorf("XCLIENT %q", got)
	}
}

func TestKick(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	c.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.expect(`OK "Logged in."`)
	h.sessions.KickAll("Kicked by admin")
	c.expect(`BYE "Kicked by admin"`)
	c.expectEOF()
	waitDone(t, h.sessions, 0)
	if h.stats.Count("session_finished") != 1 {
		t.Error("session_finished not counted")
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	pre := h.dial()
	pre.expect(caps("Dovecot ready.")...)
	proxied := h.dial()
	proxied.expect(caps("Dovecot ready.")...)
	proxied.send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	proxied.expect(`OK "Logged in."`)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx) }()
	pre.expect(`BYE "Server shutting down."`)
	pre.expectEOF()
	proxied.send("LISTSCRIPTS")
	proxied.expect(`"test" ACTIVE`, `OK "Listscripts completed."`)
	cancel()
	proxied.expect(`BYE "Server shutting down."`)
	proxied.expectEOF()
	if err := <-done; err != context.Canceled {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestTooManyCommandsBeforeLogin(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxCommands: 3}}, nil)
	c := h.dial()
	c.expect(caps("Dovecot ready.")...)
	if _, err := c.nc.Write([]byte("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect(`OK "NOOP Completed"`, `OK "NOOP Completed"`, `OK "NOOP Completed"`, `BYE "Too many commands before login."`)
	c.expectEOF()
}
