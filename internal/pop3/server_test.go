package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"

	"github.com/usher-mail/usher/internal/testenv"
)

const greeting = "+OK Dovecot ready."

var capa = []string{"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN", "."}

func TestPreLoginCommands(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("CAPA")
	c.expect(capa...)
	c.send("AUTH")
	c.expect("+OK", "PLAIN", "LOGIN", ".")
	c.send("STLS")
	c.expect("-ERR TLS support isn't enabled.")
	c.send("XCLIENT ADDR=192.0.2.1")
	c.expect("+OK You are not from trusted IP - ignoring")
	c.send("PASS x")
	c.expect("-ERR No username given.")
	c.send("USER")
	c.expect("+OK")
	c.send("PASS x")
	c.expect("-ERR [AUTH] Authentication failed.")
	c.send("stat")
	c.expect("-ERR Unknown command.")
	c.send("QUIT")
	c.expect("+OK Logging out")
	c.expectEOF()
	if h.stats.Count("command:CAPA") != 1 {
		t.Error("CAPA not counted")
	}
}

func TestUserPassProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS pass")
	c.expect("+OK Logged in.")
	c.send("STAT")
	c.expect("+OK 0 0")
	c.send("QUIT")
	c.expect("+OK Logging out.")
	c.expectEOF()

	sess := waitDone(t, h.sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "pop3" || sess.Info.Backend.Port() != uint16(h.backend.port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("STAT\r\nQUIT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.backend.received()
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "XCLIENT ADDR=127.0.0.1 PORT=") ||
		!strings.HasSuffix(lines[0], " SESSION="+sess.Info.ID+" TTL=4") ||
		lines[1] != "USER u1" || lines[2] != "PASS pass" {
		t.Errorf("backend got %q", lines)
	}
	if h.pen.Count("succeed") != 1 || h.pen.Count("fail") != 0 {
		t.Errorf("penalties %+v", h.pen.Events())
	}
	if h.stats.Count("login") != 1 || h.stats.Count("auth_success") != 1 {
		t.Error("stats not counted")
	}
}

// Without [XCLIENT] in the banner the backend is not told about the client.
func TestBackendWithoutXCLIENT(t *testing.T) {
	be := newFakeBackend(t, "+OK ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("+OK Logged in.")
	if got := be.received(); len(got) != 2 || got[0] != "USER u1" || got[1] != "PASS pass" {
		t.Errorf("backend got %q", got)
	}
}

func TestWrongPassword(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS wrong")
	c.expect("-ERR [AUTH] Authentication failed.")
	ev := h.pen.Events()
	if len(ev) != 2 || ev[1].Kind != "fail" || ev[1].User != "u1" || ev[1].Password != "wrong" {
		t.Errorf("penalties %+v", ev)
	}
	// PASS used up the USER.
	c.send("PASS pass")
	c.expect("-ERR No username given.")
	c.send("USER busy")
	c.expect("+OK")
	c.send("PASS pass")
	c.expect("-ERR [IN-USE] Mailbox is locked.")
	if h.pen.Count("fail") != 1 {
		t.Error("a locked mailbox is not an auth failure")
	}
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS pass")
	c.expect("+OK Logged in.")
	// Only the login the backend accepted may be recorded as the user's assignment.
	var got []string
	for _, cf := range h.router.Confirms() {
		got = append(got, fmt.Sprintf("%s %v", cf.User, cf.Accepted))
	}
	if want := []string{"u1 false", "busy false", "u1 true"}; !slices.Equal(got, want) {
		t.Errorf("confirmed %q, want %q", got, want)
	}
}

func TestDeadBackend(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := newHarness(t, Config{Config: login.Config{BackendPort: port}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("-ERR [SYS/TEMP] Account is temporarily unavailable.")
	c.send("CAPA")
	c.expect(capa...)
	if n := len(h.sessions.All()); n != 0 || h.pen.Count("fail") != 0 {
		t.Errorf("%d sessions, penalties %+v", n, h.pen.Events())
	}
}

func TestBadBanner(t *testing.T) {
	be := newFakeBackend(t, "-ERR go away")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("-ERR [SYS/TEMP] Account is temporarily unavailable.")
}

func TestTempFailAndLimits(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.MaxUserIPConnections = 1 })
	c1 := h.dial()
	c1.expect(greeting)
	c1.send("AUTH PLAIN AHUxAHBhc3M=")
	c1.expect("+OK Logged in.")
	c2 := h.dial()
	c2.expect(greeting)
	c2.send("AUTH PLAIN AHUxAHBhc3M=")
	c2.expect("-ERR [IN-USE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)")
	h.router.SetErr(logintest.TempFail)
	c2.send("AUTH PLAIN AHUyAHBhc3M=")
	c2.expectPrefix("-ERR [SYS/TEMP] Temporary authentication failure. [usher.test:")
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("AUTH FOO")
	c.expect("-ERR [AUTH] Unsupported authentication mechanism.")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send("*")
	c.expect("-ERR Authentication aborted by client.")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send("!!!")
	c.expect("-ERR [AUTH] Invalid base64 in response")
	c.send("AUTH PLAIN dXNlcg==")
	c.expect("-ERR [AUTH] Authentication failed.")
	c.send("AUTH login")
	c.expect("+ VXNlcm5hbWU6")
	c.send("dTE=")
	c.expect("+ UGFzc3dvcmQ6")
	c.send("*")
	c.expect("-ERR Authentication aborted by client.")
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send("AHUxAHBhc3M=")
	c.expect("+OK Logged in.")

	c2 := h.dial()
	c2.expect(greeting)
	c2.send("AUTH LOGIN dTE=")
	c2.expect("+ UGFzc3dvcmQ6")
	c2.send("cGFzcw==")
	c2.expect("+OK Logged in.")
	// A password that cannot go on a PASS line goes with AUTH PLAIN.
	c3 := h.dial()
	c3.expect(greeting)
	c3.send("AUTH PLAIN AHUzAHDDpCBzcw==") // "\0u3\0pä ss"
	c3.expect("+OK Logged in.")
	c4 := h.dial()
	c4.expect(greeting)
	c4.send("AUTH PLAIN " + "AHU0AHAKeA==") // password with a line feed
	c4.expect("-ERR [AUTH] Authentication failed.")
	got := h.backend.received()
	if got[len(got)-1] != "AUTH PLAIN AHU0AHAKeA==" {
		t.Errorf("backend got %q", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("USER " + strings.Repeat("x", 200))
	c.expect("-ERR Input buffer full, aborting")
	c.expectEOF()

	c = h.dial()
	c.expect(greeting)
	c.send("")
	c.expect("-ERR Unknown command.")
	c.send("LIST")
	c.expect("-ERR Unknown command.")
	c.send("RETR 1")
	c.expect("-ERR Unknown command.", "-ERR Too many invalid bad commands.")
	c.expectEOF()
}

func TestLoginTimeout(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{LoginTimeout: time.Millisecond}}, nil)
	c := h.dial()
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal("no -ERR before the close")
		}
		if l == "-ERR Disconnected for inactivity.\r\n" {
			break
		}
	}
	c.expectEOF()
}

func TestPlaintextPolicyAndSTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}},
		func(_ *login.Env, s *Server) {
			s.remoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
		})
	c := h.dial()
	c.expect(greeting)
	c.send("CAPA")
	c.expect("+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "SASL", ".")
	c.send("USER u1")
	c.expect("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.send("PASS pass")
	c.expect("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("-ERR [AUTH] Plaintext authentication disabled.")
	c.send("AUTH")
	c.expect("+OK", ".")
	if len(h.router.Calls()) != 0 || len(h.pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STLS must be dropped, not run under TLS.
	if _, err := c.nc.Write([]byte("STLS\r\nUSER u1\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect("+OK Begin TLS negotiation now.")
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.br, c.nc = bufio.NewReader(tc), tc
	c.send("CAPA")
	c.expect(capa...)
	c.send("STLS")
	c.expect("-ERR TLS is already active.")
	c.send("PASS pass")
	c.expect("-ERR No username given.")
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS pass")
	c.expect("+OK Logged in.")
	c.send("STAT")
	c.expect("+OK 0 0")
	if got := h.backend.received()[0]; !strings.HasPrefix(got, "XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=") {
		t.Errorf("XCLIENT %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{ImplicitTLS: true, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}}, nil)
	nc, err := tls.Dial("tcp", h.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.expect(greeting)
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("+OK Logged in.")
	c.send("STAT")
	c.expect("+OK 0 0")
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedXCLIENT(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.dial()
	c.expect("+OK [XCLIENT] Dovecot ready.")
	c.send("XCLIENT ADDR=nonsense")
	c.expect("-ERR Invalid parameters")
	c.send("XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=3 LOGIN=ignored")
	c.expect("+OK Updated")
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("+OK Logged in.")
	if got := h.backend.received()[0]; got != "XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=2" {
		t.Errorf("XCLIENT %q", got)
	}
	if ev := h.pen.Events(); ev[0].IP != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("penalty on %v", ev[0].IP)
	}
}

func TestTTLLoop(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.dial()
	c.expect("+OK [XCLIENT] Dovecot ready.")
	c.send("XCLIENT TTL=1")
	c.expect("+OK Updated")
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("-ERR Account is temporarily unavailable.")
	if len(h.backend.received()) != 0 {
		t.Error("a looping login must not reach the backend")
	}
}

func TestKick(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("+OK Logged in.")
	h.sessions.KickAll("Kicked by admin")
	c.expect("-ERR Kicked by admin")
	c.expectEOF()
	waitDone(t, h.sessions, 0)
	if h.stats.Count("session_finished") != 1 {
		t.Error("session_finished not counted")
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	pre := h.dial()
	pre.expect(greeting)
	proxied := h.dial()
	proxied.expect(greeting)
	proxied.send("AUTH PLAIN AHUxAHBhc3M=")
	proxied.expect("+OK Logged in.")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx) }()
	pre.expect("-ERR Server shutting down.")
	pre.expectEOF()
	// The proxied session keeps working until the deadline.
	proxied.send("STAT")
	proxied.expect("+OK 0 0")
	cancel()
	proxied.expect("-ERR Server shutting down.")
	proxied.expectEOF()
	if err := <-done; err != context.Canceled {
		t.Errorf("Shutdown = %v", err)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Error("still accepting")
	}
}

func TestTooManyCommandsBeforeLogin(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxCommands: 3}}, nil)
	c := h.dial()
	c.expect(greeting)
	if _, err := c.nc.Write([]byte("USER a\r\nUSER b\r\nUSER c\r\nUSER d\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect("+OK", "+OK", "+OK", "-ERR Too many commands before login.")
	c.expectEOF()
}

// With usher's own passdb, a wrong password is refused before any routing
// or backend connection, and counts as a penalty.
func TestPassdbRefusesBeforeRouting(t *testing.T) {
	pdb := &logintest.Passdb{Users: map[string]string{"u1": "pass"}}
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.Passdb = pdb })
	c := h.dial()
	c.expect(greeting)
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS wrong")
	c.expect("-ERR [AUTH] Authentication failed.")
	if calls := h.router.Calls(); len(calls) != 0 {
		t.Fatalf("routed after a passdb refusal: %v", calls)
	}
	if n := h.pen.Count("fail"); n != 1 {
		t.Fatalf("penalty failures = %d", n)
	}
	c.send("USER u1")
	c.expect("+OK")
	c.send("PASS pass")
	c.expectPrefix("+OK")
	if pdb.Calls() != 2 {
		t.Fatalf("passdb lookups = %d", pdb.Calls())
	}
}

// A trusted proxy's FORWARD= fields and the passdb's (which win on the same key) go to the
// backend in XCLIENT FORWARD=, base64 of the tab-joined fields, as Dovecot sends them.
func TestXCLIENTForward(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		env.Passdb = &logintest.Passdb{Users: map[string]string{"u1": "pass"}, Forward: []string{"plan=gold"}}
	})
	c := h.dial()
	c.expect("+OK [XCLIENT] Dovecot ready.")
	c.send("XCLIENT FORWARD=" + login.EncodeForward([]string{"ip=192.0.2.1", "plan=silver"}))
	c.expect("+OK Updated")
	c.send("AUTH PLAIN AHUxAHBhc3M=")
	c.expect("+OK Logged in.")
	got := h.backend.received()[0]
	want := " FORWARD=" + base64.StdEncoding.EncodeToString([]byte("ip=192.0.2.1\tplan=gold"))
	if !strings.HasPrefix(got, "XCLIENT ADDR=") || !strings.HasSuffix(got, want) {
		t.Errorf("XCLIENT %q, want it to end with %q", got, want)
	}
}

// A backend's "-ERR [SYS/TEMP]" is retried like a connect failure and passed on once the
// reconnects are spent.
func TestBackendTempFailRetried(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.MaxReconnects = 1 })
	c := h.dial()
	c.expect("+OK Dovecot ready.")
	c.send("USER tempfail")
	c.expect("+OK")
	c.send("PASS pass")
	c.expect("-ERR [SYS/TEMP] Try again later.")
	n := 0
	for _, l := range h.backend.received() {
		if strings.HasPrefix(l, "PASS ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d backend logins, want 2 (one reconnect)", n)
	}
}
