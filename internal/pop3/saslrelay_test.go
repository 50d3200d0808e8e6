package pop3

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
	"github.com/usher-mail/usher/internal/testenv"
)

// TestSASLRelayDovecot relays XOAUTH2, OAUTHBEARER and SCRAM-SHA-256 exchanges to a real
// Dovecot that checks the tokens against the test's introspection endpoint and the proofs
// against a stored SCRAM hash: usher offers what the backend offers (its CAPA, probed),
// relays each challenge, and passes the backend's answers on.
func TestSASLRelayDovecot(t *testing.T) {
	cl, in := testenv.StartSASLDovecot(t, testenv.Options{N: 1, Users: 12})
	b := cl.Backends()[0]
	env, fakes := logintest.BackendEnv(b.IP)
	srv := NewServer(Config{Config: login.Config{BackendPort: b.POP3Port}}, env)
	addr := logintest.Serve(t, srv)
	logintest.WaitOffered(t, &srv.mechs, "OAUTHBEARER")
	const mechs = "PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER"
	c := logintest.Dial(t, addr)
	c.Expect(greeting)
	c.Send("AUTH")
	c.Expect(append(append([]string{"+OK"}, strings.Fields(mechs)...), ".")...)

	// XOAUTH2 with the initial response.
	b64 := base64.StdEncoding.EncodeToString
	c.Send("AUTH XOAUTH2 " + b64([]byte("user=user001\x01auth=Bearer "+testenv.Token("user001")+"\x01\x01")))
	c.ExpectPrefix("+OK")
	c.Send("QUIT")
	c.ExpectPrefix("+OK")

	// A token of 4 KiB, longer than a POP3 command line, as the answer to the empty challenge.
	c = logintest.Dial(t, addr)
	c.Expect(greeting)
	c.Send("AUTH XOAUTH2")
	c.Expect("+ ")
	c.Send(b64([]byte("user=user006\x01auth=Bearer " + testenv.Token("user006") + "." + strings.Repeat("x", 4096) + "\x01\x01")))
	c.ExpectPrefix("+OK")

	// SCRAM-SHA-256: server-first, client-final, server-final relayed, then +OK.
	c = logintest.Dial(t, addr)
	c.Expect(greeting)
	sc, _ := testenv.NewSCRAM("SCRAM-SHA-256", "user004", "pass")
	c.Send("AUTH SCRAM-SHA-256 " + b64(sc.First()))
	first, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(c.ExpectPrefix("+ "), "+ "))
	final, err := sc.Final(first)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(b64(final))
	v, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(c.ExpectPrefix("+ "), "+ "))
	if err := sc.Verify(v); err != nil {
		t.Fatalf("server-final %q: %v", v, err)
	}
	c.Send("")
	c.ExpectPrefix("+OK")
	c.Send("STAT")
	c.Expect("+OK 0 0")

	// A cancel after server-first: POP3's answer, and the connection goes on.
	c = logintest.Dial(t, addr)
	c.Expect(greeting)
	c.Send("AUTH SCRAM-SHA-256 " + b64([]byte("n,,n=user005,r=0123456789")))
	c.ExpectPrefix("+ ")
	c.Send("*")
	c.Expect(errAborted)
	c.Send("AUTH")
	c.Expect(append(append([]string{"+OK"}, strings.Fields(mechs)...), ".")...)

	// Last, as the backend slows a client down after a failure: OAUTHBEARER without an
	// initial response: the empty challenge, then the wrong token's error challenge
	// (the backend's JSON), the client's dummy answer, the backend's -ERR.
	asked := in.Asked()
	c = logintest.Dial(t, addr)
	c.Expect(greeting)
	c.Send("AUTH OAUTHBEARER")
	c.Expect("+ ")
	c.Send(b64([]byte("n,a=user002,\x01auth=Bearer " + testenv.Token("user003") + "\x01\x01")))
	js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(c.ExpectPrefix("+ "), "+ "))
	if err != nil || !strings.Contains(string(js), `"status":"invalid_token"`) {
		t.Fatalf("error challenge %q %v", js, err)
	}
	c.Send(b64([]byte("\x01")))
	c.Expect("-ERR [AUTH] Authentication failed.")
	if in.Asked() == asked {
		t.Error("the backend did not ask the introspection endpoint")
	}

	// A first message that names nobody is refused before routing.
	calls := len(fakes.Router.Calls())
	c.Send("AUTH XOAUTH2 " + b64([]byte("auth=Bearer x\x01\x01")))
	c.Expect(errAuthFailed)
	if len(fakes.Router.Calls()) != calls {
		t.Error("a message without a user was routed")
	}
}

// TestSASLRelayOffer: the relayed mechanisms are offered only as learned, and never when
// usher checks passwords itself.
func TestSASLRelayOffer(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	c := h.Dial()
	c.Expect(greeting)
	c.Send("AUTH XOAUTH2 eA==")
	c.Expect(errMechanism)
	h.Srv.mechs.Learn(netip.MustParseAddr("127.0.0.1"), []string{"PLAIN", "SCRAM-SHA-256", "XOAUTH2"})
	c.Send("CAPA")
	c.Expect(append(capa[:len(capa)-2:len(capa)-2], "SASL PLAIN LOGIN SCRAM-SHA-256 XOAUTH2", ".")...)

	h = newHarness(t, Config{}, func(env *login.Env) { env.Passdb = &logintest.Passdb{} },
		func(s *Server) { s.mechs.Learn(netip.MustParseAddr("127.0.0.1"), []string{"XOAUTH2"}) })
	c = h.Dial()
	c.Expect(greeting)
	c.Send("AUTH")
	c.Expect("+OK", "PLAIN", "LOGIN", ".")
	c.Send("AUTH XOAUTH2 eA==")
	c.Expect(errMechanism)
}
