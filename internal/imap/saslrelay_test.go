package imap

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// xoauth2Backend is a scripted IMAP backend without SASL-IR that offers XOAUTH2: it takes
// the initial response after its empty "+", refuses the token "bad" with an error challenge
// and NO once the client has answered it, and accepts any other.
func xoauth2Backend(t *testing.T) *logintest.Backend {
	var b *logintest.Backend
	b = logintest.NewBackend(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		read := func() string {
			l, _ := br.ReadString('\n')
			l = strings.TrimRight(l, "\r\n")
			b.Record(l)
			return l
		}
		say("* OK [CAPABILITY IMAP4rev1 ID AUTH=PLAIN AUTH=XOAUTH2] ready.")
		for {
			line := read()
			tag, cmd, _ := strings.Cut(line, " ")
			switch {
			case line == "":
				return
			case strings.HasPrefix(cmd, "ID "):
				say("* ID NIL")
				say(tag + " OK ID completed.")
			case cmd == "AUTHENTICATE XOAUTH2":
				say("+ ")
				ir, _ := base64.StdEncoding.DecodeString(read())
				if !strings.Contains(string(ir), "Bearer bad") {
					say(tag + " OK [CAPABILITY IMAP4rev1 IDLE] Logged in")
					continue
				}
				say("+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401"}`)))
				if read() == "" {
					say(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
				}
			default:
				say(tag + " BAD unexpected")
			}
		}
	})
	return b
}

func TestSASLRelayWithoutSASLIR(t *testing.T) {
	be := xoauth2Backend(t)
	env, fakes := logintest.BackendEnv(netip.MustParseAddr("127.0.0.1"))
	srv := NewServer(Config{Config: login.Config{BackendPort: be.Port()}}, env)
	addr := logintest.Serve(t, srv)
	c := logintest.Dial(t, addr)
	// The probe at start has read the backend's banner.
	logintest.WaitOffered(t, &srv.mechs, "XOAUTH2")
	c.ExpectPrefix("* OK")
	c.Send("a CAPABILITY")
	c.Expect("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2")
	c.ExpectPrefix("a OK")
	c.Send("b AUTHENTICATE OAUTHBEARER " + base64.StdEncoding.EncodeToString([]byte("n,a=u1,\x01auth=Bearer x\x01\x01")))
	c.Expect("b " + noMechanism)

	bad := base64.StdEncoding.EncodeToString([]byte("user=u1\x01auth=Bearer bad\x01\x01"))
	c.Send("c AUTHENTICATE XOAUTH2 " + bad)
	c.Expect("+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401"}`)))
	c.Send("")
	c.Expect("c " + noAuthFailed)
	good := base64.StdEncoding.EncodeToString([]byte("user=u1\x01auth=Bearer good\x01\x01"))
	c.Send("d AUTHENTICATE XOAUTH2")
	c.Expect("+ ")
	c.Send(good)
	c.Expect("* CAPABILITY IMAP4rev1 IDLE", "d OK Logged in") // CAPABILITY was asked: untagged
	if calls := fakes.Router.Calls(); len(calls) != 2 || calls[0] != "u1" {
		t.Errorf("routed %v", calls)
	}
	if ev := fakes.Pen.Count("fail"); ev != 1 {
		t.Errorf("%d penalties, want 1 (the bad token)", ev)
	}
	// What the backend saw: the initial response after its "+", the client's empty answer.
	lines := be.Received()
	if !strings.Contains(strings.Join(lines, "|"), "L AUTHENTICATE XOAUTH2|"+bad+"||") {
		t.Errorf("backend saw %q", lines)
	}
}

func TestSASLRelayNotOffered(t *testing.T) {
	// With usher's own passdb: never, whatever the backends offer.
	learn := func(s *Server) { s.mechs.Learn(netip.MustParseAddr("127.0.0.1"), []string{"XOAUTH2", "SCRAM-SHA-256"}) }
	h := newHarness(t, Config{}, func(env *login.Env) { env.Passdb = &logintest.Passdb{} }, learn)
	c := h.Dial()
	c.Expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot ready.")
	c.Send("a AUTHENTICATE SCRAM-SHA-256 " + base64.StdEncoding.EncodeToString([]byte("n,,n=u1,r=abc")))
	c.Expect("a " + noMechanism)

	// A passdb that checks no password (static nopassword): offered.
	h = newHarness(t, Config{}, func(env *login.Env) { env.Passdb = noPasswordPassdb{&logintest.Passdb{}} }, learn)
	c = h.Dial()
	c.Expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256 AUTH=XOAUTH2] Dovecot ready.")

	// Where plaintext is refused: SCRAM, not the bearer tokens.
	h = newHarness(t, Config{}, nil, learn, func(s *Server) {
		s.RemoteAddr = func(net.Conn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4711") }
	})
	c = h.Dial()
	c.Expect("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ LOGINDISABLED AUTH=SCRAM-SHA-256] Dovecot ready.")
	c.Send("a AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=u1\x01auth=Bearer x\x01\x01")))
	c.Expect("a " + noPlainAuth)
}

// noPasswordPassdb says it checks no password, as a static nopassword passdb does.
type noPasswordPassdb struct{ login.Passdb }

func (noPasswordPassdb) ChecksPasswords() bool { return false }
