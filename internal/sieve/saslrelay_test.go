package sieve

import (
	"bufio"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
	"github.com/usher-mail/usher/internal/testenv"
)

// TestSASLRelayDovecot relays XOAUTH2 and SCRAM-SHA-1 exchanges to a real Dovecot
// (Pigeonhole) that checks the tokens against the test's introspection endpoint and the
// proofs against a stored SCRAM hash: the challenges as strings, the client's answers as
// quoted strings and literals, the backend's answers passed on.
func TestSASLRelayDovecot(t *testing.T) {
	cl, _ := testenv.StartSASLDovecot(t, testenv.Options{N: 1, Users: 12})
	b := cl.Backends()[0]
	env, _ := logintest.BackendEnv(b.IP)
	srv := NewServer(Config{Config: login.Config{BackendPort: b.SievePort}}, env)
	addr := logintest.Serve(t, srv)
	logintest.WaitOffered(t, &srv.mechs, "OAUTHBEARER")
	b64 := base64.StdEncoding.EncodeToString
	greet := func() *client {
		c := logintest.Dial(t, addr)
		for !strings.HasPrefix(c.Line(), "OK ") {
		}
		return c
	}
	c := logintest.Dial(t, addr)
	want := `"SASL" "PLAIN LOGIN SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER"`
	for l := c.Line(); !strings.HasPrefix(l, "OK "); l = c.Line() {
		if strings.HasPrefix(l, `"SASL"`) && l != want {
			t.Fatalf("got %s, want %s", l, want)
		}
	}

	// XOAUTH2 as a literal initial response.
	ir := b64([]byte("user=user001\x01auth=Bearer " + testenv.Token("user001") + "\x01\x01"))
	c.Send(`AUTHENTICATE "XOAUTH2" {` + strconv.Itoa(len(ir)) + "+}\r\n" + ir)
	c.ExpectPrefix("OK")
	c.Send("LOGOUT")
	c.ExpectPrefix("OK")

	// A token of 4 KiB, longer than a ManageSieve command, as the answer to the empty challenge.
	c = greet()
	c.Send(`AUTHENTICATE "XOAUTH2"`)
	c.Expect(`""`)
	c.Send(`"` + b64([]byte("user=user006\x01auth=Bearer "+testenv.Token("user006")+"."+strings.Repeat("x", 4096)+"\x01\x01")) + `"`)
	c.ExpectPrefix("OK")

	// SCRAM-SHA-1 without an initial response: the empty challenge, server-first and
	// server-final (Pigeonhole sends it as a challenge, not in its OK).
	c = greet()
	sc, _ := testenv.NewSCRAM("SCRAM-SHA-1", "user011", "pass")
	c.Send(`AUTHENTICATE "SCRAM-SHA-1"`)
	c.Expect(`""`)
	c.Send(`"` + b64(sc.First()) + `"`)
	first, _ := base64.StdEncoding.DecodeString(strings.Trim(c.ExpectPrefix(`"`), `"`))
	final, err := sc.Final(first)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(`"` + b64(final) + `"`)
	v, _ := base64.StdEncoding.DecodeString(strings.Trim(c.ExpectPrefix(`"`), `"`))
	if err := sc.Verify(v); err != nil {
		t.Fatalf("server-final %q: %v", v, err)
	}
	c.Send(`""`)
	c.ExpectPrefix("OK")
	c.Send("LISTSCRIPTS")
	c.ExpectPrefix("OK")

	// A cancel: ManageSieve's answer; then (last, as the backend slows a client down after a
	// failure) a wrong password: the backend's NO.
	c = greet()
	c.Send(`AUTHENTICATE "SCRAM-SHA-256" "` + b64([]byte("n,,n=user003,r=0123456789")) + `"`)
	c.ExpectPrefix(`"`)
	c.Send(`"*"`)
	c.Expect(noAborted)
	sc, _ = testenv.NewSCRAM("SCRAM-SHA-1", "user012", "wrong")
	c.Send(`AUTHENTICATE "SCRAM-SHA-1" "` + b64(sc.First()) + `"`)
	first, _ = base64.StdEncoding.DecodeString(strings.Trim(c.ExpectPrefix(`"`), `"`))
	final, _ = sc.Final(first)
	c.Send(`"` + b64(final) + `"`)
	c.Expect(noAuthFailed)
	c.Send("NOOP")
	c.Expect(`OK "NOOP Completed"`)
}

// FuzzServerString: a backend's challenge line (and the literal after it) is read within its
// bounds whatever it holds, and a string is never mistaken for the final answer.
func FuzzServerString(f *testing.F) {
	for _, s := range []string{`"dj1hYmM="`, `""`, `"a\"b"`, `{4}`, `{3+}`, `{99999999999}`, `OK "Logged in."`, `"open`, `{-1}`} {
		f.Add(s, "abcd\r\n")
	}
	f.Fuzz(func(t *testing.T, line, rest string) {
		br := bufio.NewReader(strings.NewReader(rest))
		s, isString, err := serverString(br, line)
		if !isString && (err != nil || s != "") {
			t.Fatalf("final answer %q read as %q, %v", line, s, err)
		}
		if isString && err == nil && strings.HasPrefix(line, `"`) && len(s) >= len(line) {
			t.Fatalf("string %q longer than its line %q", s, line)
		}
		if isString && !strings.HasPrefix(line, `"`) && !strings.HasPrefix(line, "{") {
			t.Fatalf("%q taken for a string", line)
		}
	})
}
