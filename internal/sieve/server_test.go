package sieve

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"

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
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send("CAPABILITY")
	c.Expect(caps("Capability completed.")...)
	c.Send("noop")
	c.Expect(`OK "NOOP Completed"`)
	c.Send(`NOOP "t\"ag"`)
	c.Expect(`OK (TAG "t\"ag") "Done"`)
	c.Send("NOOP {3+}\r\nabc")
	c.Expect(`OK (TAG "abc") "Done"`)
	c.Send("STARTTLS")
	c.Expect(`NO "TLS support isn't enabled."`)
	c.Send("XCLIENT ADDR=192.0.2.1")
	c.Expect(`NO "You are not from trusted IP"`)
	c.Send(`AUTHENTICATE "FOO"`)
	c.Expect(`NO "Unsupported authentication mechanism."`)
	c.Send("LOGOUT")
	c.Expect(`OK "Logout completed."`)
	c.ExpectEOF()
	if h.Stats.Count("command:NOOP") != 3 {
		t.Error("NOOP not counted")
	}
}

func TestAuthenticateProxies(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`OK "Logged in."`)
	c.Send("LISTSCRIPTS")
	c.Expect(`"test" ACTIVE`, `OK "Listscripts completed."`)
	c.Send("LOGOUT")
	c.Expect(`OK "Logout completed."`)
	c.ExpectEOF()

	sess := logintest.WaitDone(t, h.Sessions, 0)
	if sess.Info.User != "u1" || sess.Info.Service != "sieve" || sess.Info.Backend.Port() != uint16(h.Backend.Port()) {
		t.Errorf("session info %+v", sess.Info)
	}
	if sess.In != int64(len("LISTSCRIPTS\r\nLOGOUT\r\n")) || sess.Out == 0 {
		t.Errorf("bytes in=%d out=%d", sess.In, sess.Out)
	}
	lines := h.Backend.Received()
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "XCLIENT ADDR=127.0.0.1 PORT=") ||
		!strings.HasSuffix(lines[0], " SESSION="+sess.Info.ID+" TTL=4") ||
		lines[1] != `AUTHENTICATE "PLAIN" "AHUxAHBhc3M="` {
		t.Errorf("backend got %q", lines)
	}
	if h.Pen.Count("succeed") != 1 || h.Stats.Count("login") != 1 || h.Stats.Count("auth_success") != 1 {
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
		c := h.Dial()
		c.Expect(caps("Dovecot ready.")...)
		c.Send(tc.send)
		if tc.cont != "" {
			c.Expect(`""`)
			c.Send(tc.cont)
		}
		if got := c.Line(); got != `OK "Logged in."` {
			t.Errorf("%s: got %q", tc.name, got)
		}
	}
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "LOGIN" "dTE="`)
	c.Expect(`"UGFzc3dvcmQ6"`)
	c.Send(`"cGFzcw=="`)
	c.Expect(`OK "Logged in."`)
	if got := len(h.Sessions.All()); got != 5 {
		t.Errorf("%d sessions", got)
	}
}

func TestAuthenticateErrors(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "PLAIN"`)
	c.Expect(`""`)
	c.Send(`"*"`)
	c.Expect(`NO "Authentication aborted by client."`)
	c.Send(`AUTHENTICATE "PLAIN"`)
	c.Expect(`""`)
	c.Send(`*`)
	c.Expect(`NO "Invalid AUTHENTICATE client response."`)
	c.Send(`AUTHENTICATE "PLAIN"`)
	c.Expect(`""`)
	c.Send(`"!!!"`)
	c.Expect(`NO "Invalid base64 in response"`)
	c.Send(`AUTHENTICATE "LOGIN"`)
	c.Expect(`"VXNlcm5hbWU6"`)
	c.Send(`"dTE="`)
	c.Expect(`"UGFzc3dvcmQ6"`)
	c.Send(`"*"`)
	c.Expect(`NO "Authentication aborted by client."`)
	c.Send(`AUTHENTICATE "PLAIN" "dXNlcg=="`)
	c.Expect(`NO "Authentication failed."`)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHdyb25n"`)
	c.Expect(`NO "Authentication failed."`)
	if ev := h.Pen.Events(); h.Pen.Count("fail") != 2 || ev[len(ev)-1].Password != "wrong" {
		t.Errorf("penalties %+v", ev)
	}
	c.Send(`AUTHENTICATE "PLAIN" "AGJ1c3kAcGFzcw=="`)
	c.Expect(`NO (TRYLATER) "Mailbox is locked."`)
	if h.Pen.Count("fail") != 2 {
		t.Error("a locked mailbox is not an auth failure")
	}
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`OK "Logged in."`)
}

func TestDeadBackendAndTempFail(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	h := newHarness(t, Config{Config: login.Config{BackendPort: port}}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`NO (TRYLATER) "Account is temporarily unavailable."`)
	h.Router.SetErr(logintest.TempFail)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.ExpectPrefix(`NO (TRYLATER) "Temporary authentication failure. [usher.test:`)
	if n := len(h.Sessions.All()); n != 0 || h.Pen.Count("fail") != 0 {
		t.Errorf("%d sessions, penalties %+v", n, h.Pen.Events())
	}
}

func TestBadGreeting(t *testing.T) {
	be := newFakeBackend(t, `BYE "go away"`)
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`NO (TRYLATER) "Account is temporarily unavailable."`)
}

func TestBackendWithoutXCLIENT(t *testing.T) {
	be := newFakeBackend(t, `"SASL" "PLAIN"`)
	h := newHarness(t, Config{Config: login.Config{BackendPort: be.Port()}}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`OK "Logged in."`)
	if got := be.Received(); len(got) != 1 || !strings.HasPrefix(got[0], "AUTHENTICATE") {
		t.Errorf("backend got %q", got)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Config: login.Config{MaxLineLength: 100}}, nil)
	c := h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send(`NOOP "` + strings.Repeat("x", 200) + `"`)
	c.Expect(`BYE "Input buffer full, aborting"`)
	c.ExpectEOF()

	c = h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send("NOOP {101+}")
	c.Expect(`BYE "Input buffer full, aborting"`)
	c.ExpectEOF()

	c = h.Dial()
	c.Expect(caps("Dovecot ready.")...)
	c.Send("")
	c.Expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.Send(`AUTHENTICATE PLAIN AHUxAHBhc3M=`)
	c.Expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.Send("HAVESPACE \"x\" 1")
	c.Expect(`BYE "Too many invalid MANAGESIEVE commands."`)
	c.ExpectEOF()
}

func TestPlaintextPolicyAndSTARTTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	h := newHarness(t, Config{Config: login.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}},
		nil, func(s *Server) {
			s.RemoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
		})
	c := h.Dial()
	c.Expect(`"IMPLEMENTATION" "Dovecot Pigeonhole"`, sieveLine, `"NOTIFY" "mailto"`, `"SASL" ""`,
		`"STARTTLS"`, `"VERSION" "1.0"`, `OK "Dovecot ready."`)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`NO "Plaintext authentication disabled."`)
	if len(h.Router.Calls()) != 0 || len(h.Pen.Events()) != 0 {
		t.Error("refused logins must not route or count")
	}
	// Pipelined plaintext after STARTTLS must be dropped, not run under TLS.
	if _, err := c.NC.Write([]byte("STARTTLS\r\nNOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Expect(`OK "Begin TLS negotiation now."`)
	c.StartTLS()
	c.Expect(caps("TLS negotiation successful.")...)
	c.Send("STARTTLS")
	c.Expect(`NO "TLS is already active."`)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`OK "Logged in."`)
	c.Send("LISTSCRIPTS")
	c.Expect(`"test" ACTIVE`, `OK "Listscripts completed."`)
	if got := h.Backend.Received()[0]; !strings.HasPrefix(got, "XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=") {
		t.Errorf("XCLIENT %q", got)
	}
}

// A trusted proxy in front of us may forward its client's address.
func TestTrustedXCLIENT(t *testing.T) {
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c := h.Dial()
	want := caps("Dovecot ready.")
	want = append(want[:len(want)-1], `"XCLIENT"`, want[len(want)-1])
	c.Expect(want...)
	c.Send("XCLIENT ADDR=nonsense")
	c.Expect(`NO "Error in MANAGESIEVE command received by server."`)
	c.Send("XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=3")
	c.Expect(`OK "Updated"`)
	c.Send(`AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`)
	c.Expect(`OK "Logged in."`)
	if got := h.Backend.Received()[0]; got != "XCLIENT ADDR=198.51.100.9 PORT=5000 SESSION=abc TTL=2" {
		t.Errorf("XCLIENT %q", got)
	}
}

// TestCore runs the shared core's tests in ManageSieve's words.
func TestCore(t *testing.T) {
	logintest.RunCore(t, logintest.Dialect{
		Start:    startCore,
		Greeting: caps("Dovecot ready."),
		Login:    `AUTHENTICATE "PLAIN" "AHUxAHBhc3M="`,
		LoggedIn: []string{`OK "Logged in."`},
		Proxied:  "LISTSCRIPTS",
		Answer:   []string{`"test" ACTIVE`, `OK "Listscripts completed."`},
		Noop:     func(int) string { return "NOOP" },
		NoopOK:   func(int) string { return `OK "NOOP Completed"` },
		Last:     func(text string) string { return `BYE "` + text + `"` },
		Refused:  `BYE (TRYLATER) "Too many connections, try again later."`,
	})
}
