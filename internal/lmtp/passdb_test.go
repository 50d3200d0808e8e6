package lmtp

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/testenv"
)

// fieldsPassdb answers lookups from a table of users' reply fields; unknown users fail.
type fieldsPassdb map[string][]string

func (p fieldsPassdb) Authenticate(_ context.Context, req passdb.Request) (passdb.Reply, error) {
	f, ok := p[req.User]
	if !ok || req.Service != Service || req.Mech != "" {
		return passdb.Reply{}, nil
	}
	r := passdb.Reply{OK: true, Fields: f}
	for _, kv := range f {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			r.User = v
		}
	}
	return r, nil
}

// Each RCPT is looked up in the passdb, and its fields decide: host= and port= pick the
// backend without the director, user= rewrites the recipient and the routed name, an unknown
// user does not exist, a reply without proxy cannot be delivered by a director, and
// proxy_not_trusted keeps XCLIENT from that backend.
func TestRecipientPassdbFields(t *testing.T) {
	b1, b2 := newFakeBackend(t, "alice", "bob", "carol"), newFakeBackend(t, "dave")
	b1.xclient, b2.xclient = true, true
	pdb := fieldsPassdb{
		"alice":  {"proxy=y"},
		"pinned": {"proxy=y", "host=10.0.0.2", "port=2525", "user=dave"},
		"carol":  {"proxy=y", "user=bob"},
		"local":  {"nologin"},
		"eve":    {"proxy", "proxy_not_trusted", "host=10.0.0.2"},
	}
	r := newRigPassdb(t, Config{UsernameFormat: "%n"}, map[string]*fakeBackend{"10.0.0.1": b1, "10.0.0.2": b2},
		map[string]string{"alice": "10.0.0.1", "bob": "10.0.0.1", "dave": "10.0.0.1"}, pdb)
	c := r.dial()
	c.cmd("LHLO client", "250")
	c.cmd("MAIL FROM:<s@example.org>", "250")
	c.cmd("RCPT TO:<alice@example.org>", "250")
	c.cmd("RCPT TO:<pinned@example.org>", "250")
	c.cmd("RCPT TO:<carol@example.org>", "250")
	c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1 <nobody@example.org> User doesn't exist: nobody@example.org")
	c.cmd("RCPT TO:<local@example.org>", "451 4.3.0 ")
	c.cmd("DATA", "354")
	c.send("Subject: x", "", "hi", ".")
	// each DATA reply names the recipient as the client gave it, never the rewritten one
	for _, want := range []string{"alice@example.org", "pinned@example.org", "carol@example.org"} {
		if got := c.expect("250"); !strings.Contains(got, "<"+want+">") {
			t.Errorf("DATA reply %q, want <%s>", got, want)
		}
	}
	if got := b1.messages("bob"); len(got) != 1 {
		t.Errorf("carol (user=bob) delivered as bob: %d messages", len(got))
	}
	if got := b2.messages("dave"); len(got) != 1 {
		t.Errorf("pinned (host=10.0.0.2 user=dave) on the pinned host: %d messages", len(got))
	}
	r.mu.Lock()
	dialed := slices.Clone(r.dialed)
	r.mu.Unlock()
	if !slices.Contains(dialed, "10.0.0.2:2525") || !slices.Contains(dialed, "10.0.0.1:24") {
		t.Errorf("dialled %v, want 10.0.0.2:2525 (port=) and 10.0.0.1:24", dialed)
	}
	r.router.mu.Lock()
	calls := slices.Clone(r.router.calls)
	r.router.mu.Unlock()
	if !slices.Equal(calls, []string{"alice", "bob"}) {
		t.Errorf("routed %v, want alice and bob (carol's user=), not the pinned user", calls)
	}
	// proxy_not_trusted: a connection of its own, without XCLIENT
	xclients := func() int {
		n := 0
		for _, l := range b2.received() {
			if strings.HasPrefix(l, "XCLIENT") {
				n++
			}
		}
		return n
	}
	before := xclients()
	c.cmd("MAIL FROM:<s@example.org>", "250")
	c.cmd("RCPT TO:<eve@example.org>", "550") // b2 does not know eve: its own answer
	if before != 1 || xclients() != before || b2.connections() != 2 {
		t.Errorf("XCLIENTs %d then %d on %d connections; want 1, 1 on 2", before, xclients(), b2.connections())
	}
}

// ssl= and starttls= reach a backend over TLS; with any-cert its certificate (trusted by no
// one here) is not checked, without it the backend cannot be used.
func TestRecipientPassdbTLS(t *testing.T) {
	cert := testenv.TLSCert(t)
	implicit, starttls := newFakeBackend(t, "alice"), newFakeBackend(t, "bob", "carol")
	for _, b := range []*fakeBackend{implicit, starttls} {
		b.tlsConf.Store(&tls.Config{Certificates: []tls.Certificate{cert}})
	}
	implicit.implicitTLS.Store(true)
	pdb := fieldsPassdb{
		"alice": {"proxy", "host=10.0.0.3", "ssl=any-cert"},
		"bob":   {"proxy", "host=10.0.0.4", "starttls=any-cert"},
		"carol": {"proxy", "host=10.0.0.4", "starttls"},
	}
	r := newRigPassdb(t, Config{UsernameFormat: "%n"}, map[string]*fakeBackend{"10.0.0.3": implicit, "10.0.0.4": starttls}, nil, pdb)
	c := r.dial()
	c.cmd("LHLO client", "250")
	c.cmd("MAIL FROM:<s@example.org>", "250")
	c.cmd("RCPT TO:<alice@example.org>", "250")
	c.cmd("RCPT TO:<bob@example.org>", "250")
	c.cmd("RCPT TO:<carol@example.org>", "451 4.4.0 Proxy failed (connect, ")
	c.cmd("DATA", "354")
	c.send("Subject: x", "", "hi", ".")
	c.expect("250")
	c.expect("250")
	if len(implicit.messages("alice@example.org")) != 1 || len(starttls.messages("bob@example.org")) != 1 {
		t.Errorf("over TLS: alice %d, bob %d messages", len(implicit.messages("alice@example.org")), len(starttls.messages("bob@example.org")))
	}
	if got := starttls.received(); !slices.Contains(got, "STARTTLS") {
		t.Errorf("starttls backend got %q", got)
	}
}
