package pop3

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"

	"github.com/usher-mail/usher/internal/testenv"
)

const greeting = "+OK Dovecot ready."

var capa = []string{"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN", "."}

func TestPreLoginCommands(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("CAPA")
	c.Expect(capa...)
	c.Send("AUTH")
	c.Expect("+OK", "PLAIN", "LOGIN", ".")
	c.Send("STLS")
	c.Expect("-ERR TLS support isn't enabled.")
	c.Send("XCLIENT ADDR=192.0.2.1")
	c.Expect("+OK You are not from trusted IP - ignoring")
	c.Send("PASS x")
	c.Expect("-ERR No username given.")
	c.Send("USER")
	c.Expect("+OK")
	c.Send("PASS x")
	c.Expect("-ERR [AUTH] Authentication failed.")
	c.Send("stat")
	c.Expect("-ERR Unknown command.")
	c.Send("QUIT")
	c.Expect("+OK Logging out")
	c.ExpectEOF()
	if h.Stats.Count("command:CAPA") != 1 {
		t.Error("CAPA not counted")
	}
}

func TestUserPassProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.Expect("+OK Logged in.")
	c.Send("STAT")
	c.Expect("+OK 0 0")
	c.Send("QUIT")
	c.Expect("+OK Logging out.")
	c.ExpectEOF()

	sess := logintest.WaitDone(t, h.Sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "pop3" || sess.Info.Backend.Port() != uint16(h.Backend.Port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("STAT\r\nQUIT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.Backend.Received()
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "XCLIENT ADDR=127.0.0.1 PORT=") ||
		!strings.HasSuffix(lines[0], " SESSION="+sess.Info.ID+" TTL=4") ||
		lines[1] != "USER u1" || lines[2] != "PASS pass" {
		t.Errorf("backend got %q", lines)
	}
	if h.Pen.Count("succeed") != 1 || h.Pen.Count("fail") != 0 {
		t.Errorf("penalties %+v", h.Pen.Events())
	}
	if h.Stats.Count("login") != 1 || h.Stats.Count("auth_success") != 1 {
		t.Error("stats not counted")
	}
}

// Without [XCLIENT] in the banner the backend is not told about the client.
func TestBackendWithoutXCLIENT(t *testing.T) {
	be := newFakeBackend(t, "+OK ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("+OK Logged in.")
	if got := be.Received(); len(got) != 2 || got[0] != "USER u1" || got[1] != "PASS pass" {
		t.Errorf("backend got %q", got)
	}
}

func TestWrongPassword(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS wrong")
	c.Expect("-ERR [AUTH] Authentication failed.")
	ev := h.Pen.Events()
	if len(ev) != 2 || ev[1].Kind != "fail" || ev[1].User != "u1" || ev[1].Password != "wrong" {
		t.Errorf("penalties %+v", ev)
	}
	// PASS used up the USER.
	c.Send("PASS pass")
	c.Expect("-ERR No username given.")
	c.Send("USER busy")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.Expect("-ERR [IN-USE] Mailbox is locked.")
	if h.Pen.Count("fail") != 1 {
		t.Error("a locked mailbox is not an auth failure")
	}
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.Expect("+OK Logged in.")
	// Only the login the backend accepted may be recorded as the user's assignment.
	var got []string
	for _, cf := range h.Router.Confirms() {
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
	c := h.Dial()
	c.Expect(greeting)
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("-ERR [SYS/TEMP] Account is temporarily unavailable.")
	c.Send("CAPA")
	c.Expect(capa...)
	if n := len(h.Sessions.All()); n != 0 || h.Pen.Count("fail") != 0 {
		t.Errorf("%d sessions, penalties %+v", n, h.Pen.Events())
	}
}

func TestBadBanner(t *testing.T) {
	be := newFakeBackend(t, "-ERR go away")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("-ERR [SYS/TEMP] Account is temporarily unavailable.")
}

func TestTempFailAndLimits(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) { env.MaxUserIPConnections = 1 })
	c1 := h.Dial()
	c1.Expect(greeting)
	c1.Send("AUTH PLAIN AHUxAHBhc3M=")
	c1.Expect("+OK Logged in.")
	c2 := h.Dial()
	c2.Expect(greeting)
	c2.Send("AUTH PLAIN AHUxAHBhc3M=")
	c2.Expect("-ERR [IN-USE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)")
	h.Router.SetErr(logintest.TempFail)
	c2.Send("AUTH PLAIN AHUyAHBhc3M=")
	c2.ExpectPrefix("-ERR [SYS/TEMP] Temporary authentication failure. [usher.test:")
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("AUTH FOO")
	c.Expect("-ERR [AUTH] Unsupported authentication mechanism.")
	c.Send("AUTH PLAIN")
	c.Expect("+ ")
	c.Send("*")
	c.Expect("-ERR Authentication aborted by client.")
	c.Send("AUTH PLAIN")
	c.Expect("+ ")
	c.Send("!!!")
	c.Expect("-ERR [AUTH] Invalid base64 in response")
	c.Send("AUTH PLAIN dXNlcg==")
	c.Expect("-ERR [AUTH] Authentication failed.")
	c.Send("AUTH login")
	c.Expect("+ VXNlcm5hbWU6")
	c.Send("dTE=")
	c.Expect("+ UGFzc3dvcmQ6")
	c.Send("*")
	c.Expect("-ERR Authentication aborted by client.")
	c.Send("AUTH PLAIN")
	c.Expect("+ ")
	c.Send("AHUxAHBhc3M=")
	c.Expect("+OK Logged in.")

	c2 := h.Dial()
	c2.Expect(greeting)
	c2.Send("AUTH LOGIN dTE=")
	c2.Expect("+ UGFzc3dvcmQ6")
	c2.Send("cGFzcw==")
	c2.Expect("+OK Logged in.")
	// A password that cannot go on a PASS line goes with AUTH PLAIN.
	c3 := h.Dial()
	c3.Expect(greeting)
	c3.Send("AUTH PLAIN AHUzAHDDpCBzcw==") // "\0u3\0pä ss"
	c3.Expect("+OK Logged in.")
	c4 := h.Dial()
	c4.Expect(greeting)
	c4.Send("AUTH PLAIN " + "AHU0AHAKeA==") // password with a line feed
	c4.Expect("-ERR [AUTH] Authentication failed.")
	got := h.Backend.Received()
	if got[len(got)-1] != "AUTH PLAIN AHU0AHAKeA==" {
		t.Errorf("backend got %q", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("USER " + strings.Repeat("x", 200))
	c.Expect("-ERR Input buffer full, aborting")
	c.ExpectEOF()

	c = h.Dial()
	c.Expect(greeting)
	c.Send("")
	c.Expect("-ERR Unknown command.")
	c.Send("LIST")
	c.Expect("-ERR Unknown command.")
	c.Send("RETR 1")
	c.Expect("-ERR Unknown command.", "-ERR Too many invalid bad commands.")
	c.ExpectEOF()
}

func TestPlaintextPolicyAndSTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}},
		nil, func(s *Server) {
			s.RemoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
		})
	c := h.Dial()
	c.Expect(greeting)
	c.Send("CAPA")
	c.Expect("+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "SASL", ".")
	c.Send("USER u1")
	c.Expect("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.Send("PASS pass")
	c.Expect("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("-ERR [AUTH] Plaintext authentication disabled.")
	c.Send("AUTH")
	c.Expect("+OK", ".")
	if len(h.Router.Calls()) != 0 || len(h.Pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STLS must be dropped, not run under TLS.
	if _, err := c.NC.Write([]byte("STLS\r\nUSER u1\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Expect("+OK Begin TLS negotiation now.")
	c.StartTLS()
	c.Send("CAPA")
	c.Expect(capa...)
	c.Send("STLS")
	c.Expect("-ERR TLS is already active.")
	c.Send("PASS pass")
	c.Expect("-ERR No username given.")
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.Expect("+OK Logged in.")
	c.Send("STAT")
	c.Expect("+OK 0 0")
	if got := h.Backend.Received()[0]; !strings.HasPrefix(got, "XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=") {
		t.Errorf("XCLIENT %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{ImplicitTLS: true, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}}, nil)
	c := h.Dial()
	c.StartTLS()
	c.Expect(greeting)
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("+OK Logged in.")
	c.Send("STAT")
	c.Expect("+OK 0 0")
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedXCLIENT(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.Dial()
	c.Expect("+OK [XCLIENT] Dovecot ready.")
	c.Send("XCLIENT ADDR=nonsense")
	c.Expect("-ERR Invalid parameters")
	c.Send("XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=3 LOGIN=ignored")
	c.Expect("+OK Updated")
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("+OK Logged in.")
	if got := h.Backend.Received()[0]; got != "XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=2" {
		t.Errorf("XCLIENT %q", got)
	}
	if ev := h.Pen.Events(); ev[0].IP != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("penalty on %v", ev[0].IP)
	}
}

func TestTTLLoop(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.Dial()
	c.Expect("+OK [XCLIENT] Dovecot ready.")
	c.Send("XCLIENT TTL=1")
	c.Expect("+OK Updated")
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("-ERR Account is temporarily unavailable.")
	if len(h.Backend.Received()) != 0 {
		t.Error("a looping login must not reach the backend")
	}
}

// With usher's own passdb, a wrong password is refused before any routing
// or backend connection, and counts as a penalty.
func TestPassdbRefusesBeforeRouting(t *testing.T) {
	pdb := &logintest.Passdb{Users: map[string]string{"u1": "pass"}}
	h := newHarness(t, Config{}, func(env *login.Env) { env.Passdb = pdb })
	c := h.Dial()
	c.Expect(greeting)
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS wrong")
	c.Expect("-ERR [AUTH] Authentication failed.")
	if calls := h.Router.Calls(); len(calls) != 0 {
		t.Fatalf("routed after a passdb refusal: %v", calls)
	}
	if n := h.Pen.Count("fail"); n != 1 {
		t.Fatalf("penalty failures = %d", n)
	}
	c.Send("USER u1")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.ExpectPrefix("+OK")
	if pdb.Calls() != 2 {
		t.Fatalf("passdb lookups = %d", pdb.Calls())
	}
}

// A trusted proxy's FORWARD= fields and the passdb's (which win on the same key) go to the
// backend in XCLIENT FORWARD=, base64 of the tab-joined fields, as Dovecot sends them.
func TestXCLIENTForward(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		env.Passdb = &logintest.Passdb{Users: map[string]string{"u1": "pass"}, Forward: []string{"plan=gold"}}
	})
	c := h.Dial()
	c.Expect("+OK [XCLIENT] Dovecot ready.")
	c.Send("XCLIENT FORWARD=" + login.EncodeForward([]string{"ip=192.0.2.1", "plan=silver"}))
	c.Expect("+OK Updated")
	c.Send("AUTH PLAIN AHUxAHBhc3M=")
	c.Expect("+OK Logged in.")
	got := h.Backend.Received()[0]
	want := " FORWARD=" + base64.StdEncoding.EncodeToString([]byte("ip=192.0.2.1\tplan=gold"))
	if !strings.HasPrefix(got, "XCLIENT ADDR=") || !strings.HasSuffix(got, want) {
		t.Errorf("XCLIENT %q, want it to end with %q", got, want)
	}
}

// A backend's "-ERR [SYS/TEMP]" is retried like a connect failure and passed on once the
// reconnects are spent.
func TestBackendTempFailRetried(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) { env.MaxReconnects = 1 })
	c := h.Dial()
	c.Expect("+OK Dovecot ready.")
	c.Send("USER tempfail")
	c.Expect("+OK")
	c.Send("PASS pass")
	c.Expect("-ERR [SYS/TEMP] Try again later.")
	n := 0
	for _, l := range h.Backend.Received() {
		if strings.HasPrefix(l, "PASS ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d backend logins, want 2 (one reconnect)", n)
	}
}

// TestCore runs the shared core's tests in POP3's words.
func TestCore(t *testing.T) {
	logintest.RunCore(t, logintest.Dialect{
		Start:    startCore,
		Greeting: []string{greeting},
		Login:    "AUTH PLAIN AHUxAHBhc3M=",
		LoggedIn: []string{"+OK Logged in."},
		Proxied:  "STAT",
		Answer:   []string{"+OK 0 0"},
		Noop:     func(n int) string { return "USER " + string(rune('a'+n)) },
		NoopOK:   func(int) string { return "+OK" },
		Last:     func(text string) string { return "-ERR " + text },
		Refused:  "-ERR [SYS/TEMP] Too many connections, try again later.",
	})
}
