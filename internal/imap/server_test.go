package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
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
	c := h.dial()
	c.expect(greeting)
	c.send("a CAPABILITY")
	c.expect("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN")
	c.expect("a OK Pre-login capabilities listed, post-login capabilities have more.")
	c.send("b noop")
	c.expect("b OK NOOP completed.")
	c.send(`c ID ("name" "test" "version" NIL)`)
	c.expect(`* ID ("name" "Dovecot")`)
	c.expect("c OK ID completed.")
	c.send("d ID NIL")
	c.expect(`* ID ("name" "Dovecot")`)
	c.expect("d OK ID completed.")
	c.send("e ENABLE CONDSTORE")
	c.expect("* ENABLED")
	c.expect("e OK ENABLE ignored in non-authenticated state.")
	c.send("f STARTTLS")
	c.expect("f BAD TLS support isn't enabled.")
	c.send("g SELECT INBOX")
	c.expect("g BAD Error in IMAP command received by server.")
	c.send("h LOGOUT")
	c.expect("* BYE Logging out")
	c.expect("h OK Logout completed.")
	c.expectEOF()
	if h.stats.Count("command:NOOP") != 1 {
		t.Error("NOOP not counted")
	}
}

func TestLoginProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expect("a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	c.send("b NOOP")
	c.expect("b OK NOOP done")
	c.send("c LOGOUT")
	c.expect("* BYE bye")
	c.expect("c OK Logout completed.")
	c.expectEOF()

	sess := waitDone(t, h.sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "imap" || sess.Info.Backend.Port() != uint16(h.backend.port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("b NOOP\r\nc LOGOUT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.backend.received()
	if len(lines) < 2 || !strings.HasPrefix(lines[0], `I ID ("x-session-id" "`+sess.Info.ID+`" "x-originating-ip" "127.0.0.1" "x-originating-port" "`) ||
		!strings.HasSuffix(lines[0], `"x-proxy-ttl" "4")`) {
		t.Errorf("backend got %q", lines)
	}
	if lines[1] != `L LOGIN "u1" "pass"` {
		t.Errorf("login line %q", lines[1])
	}
	if h.pen.Count("succeed") != 1 || h.pen.Count("fail") != 0 {
		t.Errorf("penalties %+v", h.pen.Events())
	}
	if h.stats.Count("login") != 1 || h.stats.Count("auth_success") != 1 {
		t.Error("stats not counted")
	}
}

// A client that asked CAPABILITY gets the backend's list untagged, as in the Dovecot transcript.
func TestLoginAfterCapability(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a CAPABILITY")
	c.line()
	c.line()
	c.send("b AUTHENTICATE PLAIN AHUxAHBhc3M=")
	c.expect("* CAPABILITY IMAP4rev1 IDLE MOVE")
	c.expect("b OK Logged in")
}

func TestWrongPassword(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 wrong")
	c.expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	ev := h.pen.Events()
	if len(ev) != 2 || ev[1].Kind != "fail" || ev[1].User != "u1" || ev[1].Password != "wrong" || ev[1].Attempt != ev[0].Attempt {
		t.Errorf("penalties %+v", ev)
	}
	c.send("b LOGIN busy pass")
	c.expect("b NO [INUSE] Mailbox is locked.")
	c.send("c LOGIN u1 pass")
	c.expectPrefix("c OK ")
	if len(h.sessions.All()) != 1 {
		t.Error("expected one session")
	}
}

func TestDeadBackend(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := newHarness(t, Config{Config: login.Config{BackendPort: port}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expect("a NO [UNAVAILABLE] Account is temporarily unavailable.")
	c.send("b NOOP")
	c.expect("b OK NOOP completed.")
	if n := len(h.sessions.All()); n != 0 {
		t.Errorf("%d sessions registered", n)
	}
	if h.pen.Count("fail") != 0 {
		t.Error("a dead backend is not the client's fault")
	}
}

func TestBadBanner(t *testing.T) {
	be := newFakeBackend(t, "* BYE go away")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expect("a NO [UNAVAILABLE] Account is temporarily unavailable.")
}

func TestTempFail(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.router.SetErr(logintest.TempFail)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expectPrefix("a NO [UNAVAILABLE] Temporary authentication failure. [usher.test:")
}

func TestUserIPLimit(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.MaxUserIPConnections = 1 })
	c1 := h.dial()
	c1.expect(greeting)
	c1.send("a LOGIN u1 pass")
	c1.expectPrefix("a OK ")
	c2 := h.dial()
	c2.expect(greeting)
	c2.send("a LOGIN u1 pass")
	c2.expect("a NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)")
}

func TestLiterals(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN {2}")
	c.expect("+ OK")
	c.send("u1 {6+}")
	c.send(`p"a\ss`)
	c.expect("a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	if got := h.backend.received()[1]; got != `L LOGIN "u1" "p\"a\\ss"` {
		t.Errorf("backend got %q", got)
	}

	// 8-bit passwords cannot be quoted: they go on as a literal.
	c2 := h.dial()
	c2.expect(greeting)
	c2.send(`b LOGIN "u2" "pässwörd"`)
	c2.expectPrefix("b OK ")
	if got := h.backend.received()[3]; got != "L LOGIN \"u2\" {10+}|pässwörd|" {
		t.Errorf("backend got %q", got)
	}
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a AUTHENTICATE FOO")
	c.expect("a NO [ALERT] Unsupported authentication mechanism.")
	c.send("b AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send("*")
	c.expect("b BAD Authentication aborted by client.")
	c.send("c AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send("!!!")
	c.expect("c NO [ALERT] Invalid base64 in response")
	c.send("d AUTHENTICATE PLAIN dXNlcg==")
	c.expect("d NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.send("e AUTHENTICATE login")
	c.expect("+ VXNlcm5hbWU6")
	c.send("dTE=")
	c.expect("+ UGFzc3dvcmQ6")
	c.send("*")
	c.expect("e BAD Authentication aborted by client.")
	c.send("f AUTHENTICATE PLAIN")
	c.expect("+ ")
	c.send("AHUxAHBhc3M=")
	c.expect("f OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")

	c2 := h.dial()
	c2.expect(greeting)
	c2.send("a AUTHENTICATE LOGIN dTE=")
	c2.expect("+ UGFzc3dvcmQ6")
	c2.send("cGFzcw==")
	c2.expectPrefix("a OK ")
	if got := len(h.sessions.All()); got != 2 {
		t.Errorf("%d sessions", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}, MaxLiteral: 10}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN " + strings.Repeat("x", 200) + " y")
	c.expect("* BYE Input buffer full, aborting")
	c.expectEOF()

	c = h.dial()
	c.expect(greeting)
	c.send("a LOGIN {11}")
	c.expect("* BYE Literal size too large")
	c.expectEOF()

	c = h.dial()
	c.expect(greeting)
	c.send("")
	c.expect("* BAD Error in IMAP command received by server.")
	c.send("a LOGIN u1 pa\"ss")
	c.expect("a BAD Invalid characters in atom")
	c.send("b FOO")
	c.expect("* BYE Too many invalid IMAP commands.")
	c.expectEOF()
}

func TestLoginTimeout(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{LoginTimeout: time.Millisecond}}, nil)
	c := h.dial()
	c.expectPrefix("* ") // the greeting, if it beat the deadline, or the BYE
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal("no BYE before the close")
		}
		if l == "* BYE Disconnected for inactivity.\r\n" {
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
	c.expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.")
	c.send("a LOGIN u1 pass")
	c.expect("* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.")
	c.expect("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
	c.send("b AUTHENTICATE PLAIN AHUxAHBhc3M=")
	c.expect("b NO [PRIVACYREQUIRED] Plaintext authentication disabled.")
	if len(h.router.Calls()) != 0 || len(h.pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STARTTLS must be dropped, not run under TLS.
	if _, err := c.nc.Write([]byte("c STARTTLS\r\nd NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect("c OK Begin TLS negotiation now.")
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.br = bufio.NewReader(tc)
	c.nc = tc
	c.send("e CAPABILITY")
	c.expect("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN")
	c.line()
	c.send("f STARTTLS")
	c.expect("f BAD TLS is already active.")
	c.send("g LOGIN u1 pass")
	c.expect("* CAPABILITY IMAP4rev1 IDLE MOVE")
	c.expect("g OK Logged in")
	c.send("h NOOP")
	c.expect("h OK NOOP done")
	if got := h.backend.received()[0]; !strings.Contains(got, `"x-originating-ip" "192.0.2.7" "x-originating-port" "4711"`) {
		t.Errorf("ID %q", got)
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
	c.send("a LOGIN u1 pass")
	c.expectPrefix("a OK ")
	c.send("b NOOP")
	c.expect("b OK NOOP done")
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedID(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.dial()
	c.expect(greeting)
	c.send(`a ID ("X-Originating-IP" "198.51.100.9" "x-originating-port" "5000" "x-proxy-ttl" "3" "x-session-id" "abc")`)
	c.line()
	c.line()
	c.send("b LOGIN u1 pass")
	c.expectPrefix("b OK ")
	want := `I ID ("x-session-id" "abc" "x-originating-ip" "198.51.100.9" "x-originating-port" "5000"`
	if got := h.backend.received()[0]; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `"x-proxy-ttl" "2")`) {
		t.Errorf("ID %q", got)
	}
	if ev := h.pen.Events(); ev[0].IP != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("penalty on %v", ev[0].IP)
	}
}

func TestBackendLoginDisabled(t *testing.T) {
	be := newFakeBackend(t, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN] ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expectPrefix("a OK ")
	if got := be.received(); len(got) != 1 || got[0] != "L AUTHENTICATE PLAIN AHUxAHBhc3M=" {
		t.Errorf("backend got %q", got)
	}
}

func TestBackendNoCapsInBanner(t *testing.T) {
	be := newFakeBackend(t, "* OK ready.")
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.port()}}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expectPrefix("a OK ")
	if got := be.received(); len(got) < 2 || got[0] != "C CAPABILITY" || got[1] != `L LOGIN "u1" "pass"` {
		t.Errorf("backend got %q", got)
	}
}

func TestKick(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN u1 pass")
	c.expectPrefix("a OK ")
	h.sessions.KickAll("Kicked by admin.")
	c.expect("* BYE Kicked by admin.")
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
	proxied.send("a LOGIN u1 pass")
	proxied.expectPrefix("a OK ")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(ctx) }()
	pre.expect("* BYE Server shutting down.")
	pre.expectEOF()
	// The proxied session keeps working until the deadline.
	proxied.send("b NOOP")
	proxied.expect("b OK NOOP done")
	cancel()
	proxied.expect("* BYE Server shutting down.")
	proxied.expectEOF()
	if err := <-done; err != context.Canceled {
		t.Errorf("Shutdown = %v", err)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Error("still accepting")
	}
}

func TestTooManyCommandsBeforeLogin(t *testing.T) {
	env, _, _, _, _ := logintest.Env(netip.MustParseAddr("127.0.0.1"))
	s := NewServer(Config{Config: login.Config{MaxCommands: 3}}, env)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	fmt.Fprint(c, "a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\n")
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if len(lines) != 4 || lines[3] != "* BYE Too many commands before login." {
		t.Fatalf("got %q", lines)
	}
}

// A failed login is answered only after auth_failure_delay; the delay is a
// sleep in the server, so the lower bound is exact.
func TestAuthFailureDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.AuthFailureDelay = delay })
	c := h.dial()
	c.expect(greeting)
	start := time.Now()
	c.send("a LOGIN u1 wrong")
	c.expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	if d := time.Since(start); d < delay {
		t.Fatalf("failure answered after %v, before the %v delay", d, delay)
	}
	c.send("b LOGIN u1 pass")
	c.expectPrefix("b OK ")
}

// With imap_id_retain the client's own ID parameters go first in the backend's ID, without the
// keys only a proxy may set; the forward fields (a trusted client's x-forward-*, the passdb's
// on top) go last as x-forward-*, as Dovecot's proxy writes them.
func TestIDRetainAndForward(t *testing.T) {
	h := newHarness(t, Config{IDRetain: true}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		env.Passdb = &logintest.Passdb{Users: map[string]string{"u1": "pass"}, Forward: []string{"plan=gold"}}
	})
	c := h.dial()
	c.expect(greeting)
	c.send(`a ID ("name" "mua" "x-originating-ip" "198.51.100.9" "X-Forward-Plan" "silver" "x-forward-tenant" "acme" "os" NIL "long" "` + strings.Repeat("v", 300) + `")`)
	c.line()
	c.line()
	c.send("b LOGIN u1 pass")
	c.expectPrefix("b OK ")
	got := h.backend.received()[0]
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
	c := h.dial()
	c.expect(greeting)
	c.send(`a ID ("name" "mua" "x-forward-tenant" "acme")`)
	c.line()
	c.line()
	c.send("b LOGIN u1 pass")
	c.expectPrefix("b OK ")
	if got := h.backend.received()[0]; !strings.HasPrefix(got, `I ID ("x-session-id" "`) || strings.Contains(got, "mua") || strings.Contains(got, "acme") {
		t.Errorf("ID %q", got)
	}
}

// A backend's "NO [UNAVAILABLE]" is retried like a connect failure and passed on once the
// reconnects are spent; other NO codes are passed on at once.
func TestBackendUnavailableRetried(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) { env.MaxReconnects = 1 })
	c := h.dial()
	c.expect(greeting)
	c.send("a LOGIN tempfail pass")
	c.expect("a NO [UNAVAILABLE] Internal error occurred.")
	c.send("b LOGIN busy pass")
	c.expect("b NO [INUSE] Mailbox is locked.")
	logins := 0
	for _, l := range h.backend.received() {
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
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.dial()
	c.expect(greeting)
	evil := "ab\r\nX LOGOUT"
	c.send(`a ID ("x-session-id" {` + strconv.Itoa(len(evil)) + `+}`)
	c.send(evil + `)`)
	c.line()
	c.line()
	c.send("b LOGIN u1 pass")
	c.expectPrefix("b OK ")
	got := h.backend.received()
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
	dialFrom := func(ip string) *client {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		nc, err := d.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		t.Cleanup(func() { nc.Close() })
		return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	}
	const bye = "* BYE [UNAVAILABLE] Too many connections, try again later."
	proxied := dialFrom("127.0.0.1")
	proxied.expect(greeting)
	proxied.send("a LOGIN u1 pass")
	proxied.expectPrefix("a OK ")
	pre := dialFrom("127.0.0.1")
	pre.expect(greeting)
	over := dialFrom("127.0.0.1")
	over.expect(bye)
	over.expectEOF()
	other := dialFrom("127.0.0.2")
	other.expect(greeting)
	full := dialFrom("127.0.0.3")
	full.expect(bye)
	// A place is free again once a connection has gone.
	pre.nc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := dialFrom("127.0.0.1")
		if c.line() == greeting {
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
	h := newHarness(t, Config{}, func(env *login.Env, _ *Server) {
		env.UsernameChars = "abcdefghijklmnopqrstuvwxyz0123456789.-_@"
	})
	c := h.dial()
	c.expect(greeting)
	c.send(`a LOGIN "` + strings.Repeat("u", 60<<10) + `" "x"`)
	c.expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")
	c.send(`b LOGIN "us er" "x"`)
	c.expect("b NO [AUTHENTICATIONFAILED] Authentication failed.")
	if calls := h.router.Calls(); len(calls) != 0 {
		t.Errorf("routed %d names", len(calls))
	}
	if got := h.backend.received(); len(got) != 0 {
		t.Errorf("backend got %d lines", len(got))
	}
	if h.pen.Count("fail") != 2 {
		t.Errorf("penalty events %v", h.pen.Events())
	}
}
