package imap

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
	"github.com/usher-mail/usher/internal/netx"

	"github.com/usher-mail/usher/internal/testenv"
)

const greeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot ready."

func TestPreLoginCommands(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a CAPABILITY")
	c.Expect("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN")
	c.Expect("a OK Pre-login capabilities listed, post-login capabilities have more.")
	c.Send("b noop")
	c.Expect("b OK NOOP completed.")
	c.Send(`c ID ("name" "test" "version" NIL)`)
	c.Expect(`* ID ("name" "Dovecot")`)
	c.Expect("c OK ID completed.")
	c.Send("d ID NIL")
	c.Expect(`* ID ("name" "Dovecot")`)
	c.Expect("d OK ID completed.")
	c.Send("e ENABLE CONDSTORE")
	c.Expect("* ENABLED")
	c.Expect("e OK ENABLE ignored in non-authenticated state.")
	c.Send("f STARTTLS")
	c.Expect("f BAD TLS support isn't enabled.")
	c.Send("g SELECT INBOX")
	c.Expect("g BAD Error in IMAP command received by server.")
	c.Send("h LOGOUT")
	c.Expect("* BYE Logging out")
	c.Expect("h OK Logout completed.")
	c.ExpectEOF()
	if h.Stats.Count("command:NOOP") != 1 {
		t.Error("NOOP not counted")
	}
}

func TestLoginProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.Expect("a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	c.Send("b NOOP")
	c.Expect("b OK NOOP done")
	c.Send("c LOGOUT")
	c.Expect("* BYE bye")
	c.Expect("c OK Logout completed.")
	c.ExpectEOF()

	sess := logintest.WaitDone(t, h.Sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "imap" || sess.Info.Backend.Port() != uint16(h.Backend.Port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("b NOOP\r\nc LOGOUT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.Backend.Received()
	if len(lines) < 2 || !strings.HasPrefix(lines[0], `I ID ("x-session-id" "`+sess.Info.ID+`" "x-originating-ip" "127.0.0.1" "x-originating-port" "`) ||
		!strings.HasSuffix(lines[0], `"x-proxy-ttl" "4")`) {
		t.Errorf("backend got %q", lines)
	}
	if lines[1] != `L LOGIN "u1" "pass"` {
		t.Errorf("login line %q", lines[1])
	}
	if h.Pen.Count("succeed") != 1 || h.Pen.Count("fail") != 0 {
		t.Errorf("penalties %+v", h.Pen.Events())
	}
	if h.Stats.Count("login") != 1 || h.Stats.Count("auth_success") != 1 {
		t.Error("stats not counted")
	}
}

// A client that asked CAPABILITY gets the backend's list untagged, as in the Dovecot transcript.
func TestLoginAfterCapability(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a CAPABILITY")
	c.Line()
	c.Line()
	c.Send("b AUTHENTICATE PLAIN AHUxAHBhc3M=")
	c.Expect("* CAPABILITY IMAP4rev1 IDLE MOVE")
	c.Expect("b OK Logged in")
}

func TestWrongPassword(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 wrong")
	c.Expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	ev := h.Pen.Events()
	if len(ev) != 2 || ev[1].Kind != "fail" || ev[1].User != "u1" || ev[1].Password != "wrong" || ev[1].Attempt != ev[0].Attempt {
		t.Errorf("penalties %+v", ev)
	}
	c.Send("b LOGIN busy pass")
	c.Expect("b NO [INUSE] Mailbox is locked.")
	c.Send("c LOGIN u1 pass")
	c.ExpectPrefix("c OK ")
	if len(h.Sessions.All()) != 1 {
		t.Error("expected one session")
	}
}

func TestDeadBackend(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := newHarness(t, Config{Config: login.Config{BackendPort: port}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.Expect("a NO [UNAVAILABLE] Account is temporarily unavailable.")
	c.Send("b NOOP")
	c.Expect("b OK NOOP completed.")
	if n := len(h.Sessions.All()); n != 0 {
		t.Errorf("%d sessions registered", n)
	}
	if h.Pen.Count("fail") != 0 {
		t.Error("a dead backend is not the client's fault")
	}
}

func TestBadBanner(t *testing.T) {
	be := newFakeBackend(t, "* BYE go away")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.Expect("a NO [UNAVAILABLE] Account is temporarily unavailable.")
}

func TestTempFail(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.Router.SetErr(logintest.TempFail)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.ExpectPrefix("a NO [UNAVAILABLE] Temporary authentication failure. [usher.test:")
}

func TestUserIPLimit(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) { env.MaxUserIPConnections = 1 })
	c1 := h.Dial()
	c1.Expect(greeting)
	c1.Send("a LOGIN u1 pass")
	c1.ExpectPrefix("a OK ")
	c2 := h.Dial()
	c2.Expect(greeting)
	c2.Send("a LOGIN u1 pass")
	c2.Expect("a NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)")
}

func TestLiterals(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN {2}")
	c.Expect("+ OK")
	c.Send("u1 {6+}")
	c.Send(`p"a\ss`)
	c.Expect("a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	if got := h.Backend.Received()[1]; got != `L LOGIN "u1" "p\"a\\ss"` {
		t.Errorf("backend got %q", got)
	}

	// 8-bit passwords cannot be quoted: they go on as a literal.
	c2 := h.Dial()
	c2.Expect(greeting)
	c2.Send(`b LOGIN "u2" "pässwörd"`)
	c2.ExpectPrefix("b OK ")
	if got := h.Backend.Received()[3]; got != "L LOGIN \"u2\" {10+}|pässwörd|" {
		t.Errorf("backend got %q", got)
	}
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a AUTHENTICATE FOO")
	c.Expect("a NO [ALERT] Unsupported authentication mechanism.")
	c.Send("b AUTHENTICATE PLAIN")
	c.Expect("+ ")
	c.Send("*")
	c.Expect("b BAD Authentication aborted by client.")
	c.Send("c AUTHENTICATE PLAIN")
	c.Expect("+ ")
	c.Send("!!!")
	c.Expect("c NO [ALERT] Invalid base64 in response")
	c.Send("d AUTHENTICATE PLAIN dXNlcg==")
	c.Expect("d NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.Send("e AUTHENTICATE login")
	c.Expect("+ VXNlcm5hbWU6")
	c.Send("dTE=")
	c.Expect("+ UGFzc3dvcmQ6")
	c.Send("*")
	c.Expect("e BAD Authentication aborted by client.")
	c.Send("f AUTHENTICATE PLAIN")
	c.Expect("+ ")
	c.Send("AHUxAHBhc3M=")
	c.Expect("f OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")

	c2 := h.Dial()
	c2.Expect(greeting)
	c2.Send("a AUTHENTICATE LOGIN dTE=")
	c2.Expect("+ UGFzc3dvcmQ6")
	c2.Send("cGFzcw==")
	c2.ExpectPrefix("a OK ")
	if got := len(h.Sessions.All()); got != 2 {
		t.Errorf("%d sessions", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}, MaxLiteral: 10}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN " + strings.Repeat("x", 200) + " y")
	c.Expect("* BYE Input buffer full, aborting")
	c.ExpectEOF()

	c = h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN {11}")
	c.Expect("* BYE Literal size too large")
	c.ExpectEOF()

	c = h.Dial()
	c.Expect(greeting)
	c.Send("")
	c.Expect("* BAD Error in IMAP command received by server.")
	c.Send("a LOGIN u1 pa\"ss")
	c.Expect("a BAD Invalid characters in atom")
	c.Send("b FOO")
	c.Expect("* BYE Too many invalid IMAP commands.")
	c.ExpectEOF()
}

func TestPlaintextPolicyAndSTARTTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}},
		nil, func(s *Server) {
			s.RemoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
		})
	c := h.Dial()
	c.Expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.")
	c.Send("a LOGIN u1 pass")
	c.Expect("* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.")
	c.Expect("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.Send("b AUTHENTICATE PLAIN AHUxAHBhc3M=")
	c.Expect("b NO [PRIVACYREQUIRED] Plaintext authentication disabled.")
	if len(h.Router.Calls()) != 0 || len(h.Pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STARTTLS must be dropped, not run under TLS.
	if _, err := c.NC.Write([]byte("c STARTTLS\r\nd NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Expect("c OK Begin TLS negotiation now.")
	c.StartTLS()
	c.Send("e CAPABILITY")
	c.Expect("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN")
	c.Line()
	c.Send("f STARTTLS")
	c.Expect("f BAD TLS is already active.")
	c.Send("g LOGIN u1 pass")
	c.Expect("* CAPABILITY IMAP4rev1 IDLE MOVE")
	c.Expect("g OK Logged in")
	c.Send("h NOOP")
	c.Expect("h OK NOOP done")
	if got := h.Backend.Received()[0]; !strings.Contains(got, `"x-originating-ip" "192.0.2.7" "x-originating-port" "4711"`) {
		t.Errorf("ID %q", got)
	}
}

func TestImplicitTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{ImplicitTLS: true, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}}, nil)
	c := h.Dial()
	c.StartTLS()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.ExpectPrefix("a OK ")
	c.Send("b NOOP")
	c.Expect("b OK NOOP done")
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedID(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.Dial()
	c.Expect(greeting)
	c.Send(`a ID ("X-Originating-IP" "198.51.100.9" "x-originating-port" "5000" "x-proxy-ttl" "3" "x-session-id" "abc")`)
	c.Line()
	c.Line()
	c.Send("b LOGIN u1 pass")
	c.ExpectPrefix("b OK ")
	want := `I ID ("x-session-id" "abc" "x-originating-ip" "198.51.100.9" "x-originating-port" "5000"`
	if got := h.Backend.Received()[0]; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `"x-proxy-ttl" "2")`) {
		t.Errorf("ID %q", got)
	}
	if ev := h.Pen.Events(); ev[0].IP != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("penalty on %v", ev[0].IP)
	}
}

func TestBackendLoginDisabled(t *testing.T) {
	be := newFakeBackend(t, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN] ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.ExpectPrefix("a OK ")
	if got := be.Received(); len(got) != 1 || got[0] != "L AUTHENTICATE PLAIN AHUxAHBhc3M=" {
		t.Errorf("backend got %q", got)
	}
}

func TestBackendNoCapsInBanner(t *testing.T) {
	be := newFakeBackend(t, "* OK ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.ExpectPrefix("a OK ")
	if got := be.Received(); len(got) < 2 || got[0] != "C CAPABILITY" || got[1] != `L LOGIN "u1" "pass"` {
		t.Errorf("backend got %q", got)
	}
}

// A failed login is answered only after auth_failure_delay; the delay is a
// sleep in the server, so the lower bound is exact.
func TestAuthFailureDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	h := newHarness(t, Config{}, func(env *login.Env) { env.AuthFailureDelay = delay })
	c := h.Dial()
	c.Expect(greeting)
	start := time.Now()
	c.Send("a LOGIN u1 wrong")
	c.Expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	if d := time.Since(start); d < delay {
		t.Fatalf("failure answered after %v, before the %v delay", d, delay)
	}
	c.Send("b LOGIN u1 pass")
	c.ExpectPrefix("b OK ")
}

// With imap_id_retain the client's own ID parameters go first in the backend's ID, without the
// keys only a proxy may set; the forward fields (a trusted client's x-forward-*, the passdb's
// on top) go last as x-forward-*, as Dovecot's proxy writes them.
func TestIDRetainAndForward(t *testing.T) {
	h := newHarness(t, Config{IDRetain: true}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		env.Passdb = &logintest.Passdb{Users: map[string]string{"u1": "pass"}, Forward: []string{"plan=gold"}}
	})
	c := h.Dial()
	c.Expect(greeting)
	c.Send(`a ID ("name" "mua" "x-originating-ip" "198.51.100.9" "X-Forward-Plan" "silver" "x-forward-tenant" "acme" "os" NIL "long" "` + strings.Repeat("v", 300) + `")`)
	c.Line()
	c.Line()
	c.Send("b LOGIN u1 pass")
	c.ExpectPrefix("b OK ")
	got := h.Backend.Received()[0]
	if !strings.HasPrefix(got, `I ID ("name" "mua" "os" NIL "x-session-id" "`) ||
		!strings.HasSuffix(got, `"x-proxy-ttl" "4" "x-forward-tenant" "acme" "x-forward-plan" "gold")`) ||
		strings.Contains(got, "vvv") || strings.Contains(got, "silver") {
		t.Errorf("ID %q", got)
	}
}

// Without imap_id_retain (Dovecot's default) nothing of the client's ID is passed on, and an
// untrusted client's x-forward-* are ignored.
func TestIDNotRetained(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send(`a ID ("name" "mua" "x-forward-tenant" "acme")`)
	c.Line()
	c.Line()
	c.Send("b LOGIN u1 pass")
	c.ExpectPrefix("b OK ")
	if got := h.Backend.Received()[0]; !strings.HasPrefix(got, `I ID ("x-session-id" "`) || strings.Contains(got, "mua") || strings.Contains(got, "acme") {
		t.Errorf("ID %q", got)
	}
}

// A backend's "NO [UNAVAILABLE]" is retried like a connect failure and passed on once the
// reconnects are spent; other NO codes are passed on at once.
func TestBackendUnavailableRetried(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) { env.MaxReconnects = 1 })
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN tempfail pass")
	c.Expect("a NO [UNAVAILABLE] Internal error occurred.")
	c.Send("b LOGIN busy pass")
	c.Expect("b NO [INUSE] Mailbox is locked.")
	logins := 0
	for _, l := range h.Backend.Received() {
		if strings.HasPrefix(l, "L LOGIN ") {
			logins++
		}
	}
	if logins != 3 {
		t.Errorf("%d backend logins, want 3 (tempfail twice, busy once)", logins)
	}
}

// TestTrustedIDSessionControl: a session id a trusted proxy sends as a
// literal with CR LF in it is not passed on: the backend's ID command stays
// one line with usher's own session id.
func TestTrustedIDSessionControl(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.Dial()
	c.Expect(greeting)
	evil := "ab\r\nX LOGOUT"
	c.Send(`a ID ("x-session-id" {` + strconv.Itoa(len(evil)) + `+}`)
	c.Send(evil + `)`)
	c.Line()
	c.Line()
	c.Send("b LOGIN u1 pass")
	c.ExpectPrefix("b OK ")
	got := h.Backend.Received()
	if !strings.HasPrefix(got[0], `I ID ("x-session-id" "`) || strings.Contains(got[0], "ab") || strings.Contains(strings.Join(got, "\n"), "X LOGOUT") {
		t.Errorf("backend got %q", got)
	}
}

// TestConnectionCeilings: past the per-IP ceiling a client gets "* BYE"
// and is closed; a proxied session keeps its place until it ends; the
// service total holds across addresses.
func TestConnectionCeilings(t *testing.T) {
	lim := &netx.Limiter{}
	lim.Set(netx.Limits{Total: 3, PerIP: 2})
	h := newHarness(t, Config{Config: login.Config{Limiter: lim}}, nil)
	dialFrom := func(ip string) *client { return logintest.DialFrom(t, ip, h.Addr) }
	const bye = "* BYE [UNAVAILABLE] Too many connections, try again later."
	proxied := dialFrom("127.0.0.1")
	proxied.Expect(greeting)
	proxied.Send("a LOGIN u1 pass")
	proxied.ExpectPrefix("a OK ")
	pre := dialFrom("127.0.0.1")
	pre.Expect(greeting)
	over := dialFrom("127.0.0.1")
	over.Expect(bye)
	over.ExpectEOF()
	other := dialFrom("127.0.0.2")
	other.Expect(greeting)
	full := dialFrom("127.0.0.3")
	full.Expect(bye)
	// A place is free again once a connection has gone.
	pre.NC.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := dialFrom("127.0.0.1")
		if c.Line() == greeting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed connection's place was never freed")
		}
	}
}

// TestJunkUserName: a 60 KB name, or one with a byte outside
// auth_username_chars, fails as a wrong login would, without being routed
// or reaching a backend.
func TestJunkUserName(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.UsernameChars = "abcdefghijklmnopqrstuvwxyz0123456789.-_@"
	})
	c := h.Dial()
	c.Expect(greeting)
	c.Send(`a LOGIN "` + strings.Repeat("u", 60<<10) + `" "x"`)
	c.Expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.Send(`b LOGIN "us er" "x"`)
	c.Expect("b NO [AUTHENTICATIONFAILED] Authentication failed.")
	if calls := h.Router.Calls(); len(calls) != 0 {
		t.Errorf("routed %d names", len(calls))
	}
	if got := h.Backend.Received(); len(got) != 0 {
		t.Errorf("backend got %d lines", len(got))
	}
	if h.Pen.Count("fail") != 2 {
		t.Errorf("penalty events %v", h.Pen.Events())
	}
}

// TestCore runs the shared core's tests in IMAP's words.
func TestCore(t *testing.T) {
	logintest.RunCore(t, logintest.Dialect{
		Start:    startCore,
		Greeting: []string{greeting},
		Login:    "a LOGIN u1 pass",
		LoggedIn: []string{"a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"},
		Proxied:  "b NOOP",
		Answer:   []string{"b OK NOOP done"},
		Noop:     func(n int) string { return string(rune('a'+n)) + " NOOP" },
		NoopOK:   func(n int) string { return string(rune('a'+n)) + " OK NOOP completed." },
		Last:     func(text string) string { return "* BYE " + text },
		Refused:  "* BYE [UNAVAILABLE] Too many connections, try again later.",
	})
}
