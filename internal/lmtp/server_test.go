package lmtp

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

const msg = "Subject: test\r\n\r\nhello\r\n..dot line\r\n"

// twoBackends: alice and carol live on 10.0.0.1, bob and dave on 10.0.0.2.
func twoBackends(t *testing.T, cfg Config) (*rig, *fakeBackend, *fakeBackend) {
	b1 := newFakeBackend(t, "alice", "carol")
	b2 := newFakeBackend(t, "bob", "dave")
	r := newRig(t, cfg, map[string]*fakeBackend{"10.0.0.1": b1, "10.0.0.2": b2}, map[string]string{
		"alice@x.test": "10.0.0.1", "carol@x.test": "10.0.0.1",
		"bob@x.test": "10.0.0.2", "dave@x.test": "10.0.0.2", "nobody@x.test": "10.0.0.2",
	})
	return r, b1, b2
}

func TestGreetingAndLHLO(t *testing.T) {
	r, _, _ := twoBackends(t, Config{MaxMessageSize: 1000})
	c := r.dial()
	got := c.cmd("LHLO client.test", "250-usher.test")
	want := "250-usher.test|250-8BITMIME|250-CHUNKING|250-ENHANCEDSTATUSCODES|250-PIPELINING|250 SIZE 1000"
	if got != want {
		t.Fatalf("LHLO: %q, want %q", got, want)
	}
	c.cmd("NOOP", "250 2.0.0 OK")
	c.cmd("VRFY x", "252 2.3.3")
	c.cmd("QUIT", "221 2.0.0 Bye")
}

func TestDeliveryRepliesPerRecipientInOrder(t *testing.T) {
	r, b1, b2 := twoBackends(t, Config{})
	c := r.dial()
	c.cmd("LHLO client.test", "250-")
	c.cmd("MAIL FROM:<sender@x.test>", "250 2.1.0 OK")
	c.cmd("RCPT TO:<alice@x.test>", "250 2.1.5 OK")
	c.cmd("RCPT TO:<Bob+folder@X.test>", "250 2.1.5 OK")
	c.cmd("RCPT TO:<nobody@x.test>", "550 5.1.1 <nobody@x.test>")
	c.cmd("RCPT TO:<carol@x.test>", "250 2.1.5 OK")
	c.cmd("RCPT TO:<ghost@elsewhere.test>", "451 4.3.0 Temporary user lookup failure")
	c.cmd("DATA", "354 ")
	c.send(msg + ".")
	c.expect("250 2.0.0 <alice@x.test> ")
	c.expect("250 2.0.0 <Bob+folder@X.test> ")
	c.expect("250 2.0.0 <carol@x.test> ")
	c.cmd("QUIT", "221")

	for _, tc := range []struct {
		b    *fakeBackend
		rcpt string
	}{{b1, "alice@x.test"}, {b2, "Bob+folder@X.test"}, {b1, "carol@x.test"}} {
		if got := tc.b.messages(tc.rcpt); len(got) != 1 || got[0] != strings.ReplaceAll(msg, "..", ".") {
			t.Errorf("%s got %q", tc.rcpt, got)
		}
	}
	if b1.connections() != 1 || b2.connections() != 1 {
		t.Errorf("connections: %d and %d, want one per backend", b1.connections(), b2.connections())
	}
	// The detail is dropped and the name lower-cased (%Lu) before routing.
	calls := strings.Join(r.router.calls, " ")
	if calls != "alice@x.test bob@x.test nobody@x.test carol@x.test ghost@elsewhere.test" {
		t.Errorf("routed %s", calls)
	}
	// Only recipients the backend accepted may be recorded as their users' assignments.
	if got := strings.Join(r.router.confirms, ", "); got != "alice@x.test true, bob@x.test true, nobody@x.test false, carol@x.test true" {
		t.Errorf("confirmed %s", got)
	}
	sess := r.sessions.All()
	if len(sess) != 3 {
		t.Fatalf("%d sessions, want one per accepted recipient", len(sess))
	}
	for _, s := range sess {
		if s.Info.Service != "lmtp" || s.Info.Client.IsValid() || !s.Done || s.In == 0 {
			t.Errorf("session %+v", s)
		}
	}
}

func TestPipelinedTransaction(t *testing.T) {
	r, b1, _ := twoBackends(t, Config{})
	c := r.dial()
	c.send("LHLO client.test", "MAIL FROM:<>", "RCPT TO:<alice@x.test>", "RCPT TO:<bob@x.test>", "DATA")
	for _, want := range []string{"250-usher.test", "250 2.1.0", "250 2.1.5", "250 2.1.5", "354"} {
		c.expect(want)
	}
	c.send(msg+".", "MAIL FROM:<a@x.test>", "RCPT TO:<carol@x.test>", "DATA")
	for _, want := range []string{"250 2.0.0 <alice", "250 2.0.0 <bob", "250 2.1.0", "250 2.1.5", "354"} {
		c.expect(want)
	}
	c.send("x\r\n.", "QUIT")
	c.expect("250 2.0.0 <carol")
	c.expect("221")
	if got := b1.messages("carol@x.test"); len(got) != 1 || got[0] != "x\r\n" {
		t.Fatalf("carol got %q", got)
	}
}

func TestBackendDyingMidMessage(t *testing.T) {
	r, b1, b2 := twoBackends(t, Config{})
	b2.dieAfter.Store(2)
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "RCPT TO:<bob@x.test>",
		"RCPT TO:<dave@x.test>", "RCPT TO:<carol@x.test>", "DATA")
	for _, want := range []string{"250-", "250 ", "250 ", "250 ", "250 ", "250 ", "354"} {
		c.expect(want)
	}
	c.send("a: b", "", "line 1", "line 2", "line 3", ".")
	c.expect("250 2.0.0 <alice@x.test>")
	c.expect("451 4.4.0 Proxy failed (connection lost, session=")
	c.expect("451 4.4.0 Proxy failed (connection lost, session=")
	c.expect("250 2.0.0 <carol@x.test>")
	if len(b2.messages("bob@x.test")) != 0 || len(b1.messages("alice@x.test")) != 1 {
		t.Fatal("wrong deliveries")
	}
	// The connection stays usable; the retry reaches a fresh backend connection.
	b2.dieAfter.Store(0)
	c.send("MAIL FROM:<s@x.test>", "RCPT TO:<bob@x.test>", "RCPT TO:<dave@x.test>", "DATA")
	for _, want := range []string{"250 ", "250 ", "250 ", "354"} {
		c.expect(want)
	}
	c.send("a: b", "", "body", ".")
	c.expect("250 2.0.0 <bob@x.test>")
	c.expect("250 2.0.0 <dave@x.test>")
	if len(b2.messages("bob@x.test")) != 1 || len(b2.messages("dave@x.test")) != 1 {
		t.Fatal("retry not delivered exactly once")
	}
}

func TestUnreachableBackend(t *testing.T) {
	b1 := newFakeBackend(t, "alice")
	r := newRig(t, Config{}, map[string]*fakeBackend{"10.0.0.1": b1},
		map[string]string{"alice@x.test": "10.0.0.1", "bob@x.test": "10.0.0.9", "eve@x.test": "10.0.0.9"})
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>")
	c.expect("250-")
	c.expect("250 ")
	c.cmd("RCPT TO:<bob@x.test>", "451 4.4.0 Proxy failed (connect, session=")
	c.cmd("RCPT TO:<eve@x.test>", "451 4.4.0 Proxy failed (connect, session=")
	c.cmd("DATA", "554 5.5.0 No valid recipients")
	c.cmd("RCPT TO:<alice@x.test>", "250 ")
	c.cmd("DATA", "354")
	c.send("hi", ".")
	c.expect("250 2.0.0 <alice@x.test>")
}

func TestMessageSizeLimit(t *testing.T) {
	r, b1, _ := twoBackends(t, Config{MaxMessageSize: 100})
	c := r.dial()
	c.cmd("LHLO c", "250-")
	c.cmd("MAIL FROM:<s@x.test> SIZE=101", "552 5.2.3 Message size exceeds administrative limit")
	c.cmd("MAIL FROM:<s@x.test> SIZE=100", "250 ")
	c.cmd("RCPT TO:<alice@x.test>", "250 ")
	c.cmd("RCPT TO:<bob@x.test>", "250 ")
	c.cmd("DATA", "354")
	c.send(strings.Repeat("0123456789abcdefghi\r\n", 10) + ".")
	c.expect("552 5.2.3 ")
	c.expect("552 5.2.3 ")
	// The session goes on; a message within the limit is fine.
	c.send("MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354")
	c.send("small", ".")
	c.expect("250 2.0.0 <alice@x.test>")
	if got := b1.messages("alice@x.test"); len(got) != 1 || got[0] != "small\r\n" {
		t.Fatalf("alice got %q", got)
	}
}

func TestBDAT(t *testing.T) {
	r, b1, b2 := twoBackends(t, Config{})
	c := r.dial()
	body1 := "Subject: chunks\r\n\r\n.leading dot\r\n"
	body2 := "bare lf\nlast line without end"
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "RCPT TO:<bob@x.test>")
	for _, want := range []string{"250-", "250 ", "250 ", "250 "} {
		c.expect(want)
	}
	c.c.Write([]byte("BDAT " + strconv.Itoa(len(body1)) + "\r\n" + body1))
	c.expect("250 2.0.0 Added " + strconv.Itoa(len(body1)) + " octets")
	c.c.Write([]byte("BDAT " + strconv.Itoa(len(body2)) + " LAST\r\n" + body2))
	c.expect("250 2.0.0 <alice@x.test>")
	c.expect("250 2.0.0 <bob@x.test>")
	want := "Subject: chunks\r\n\r\n.leading dot\r\nbare lf\r\nlast line without end\r\n"
	if got := b1.messages("alice@x.test"); len(got) != 1 || got[0] != want {
		t.Fatalf("alice got %q", got)
	}
	if got := b2.messages("bob@x.test"); len(got) != 1 || got[0] != want {
		t.Fatalf("bob got %q", got)
	}
	// A BDAT outside a transaction is read and refused.
	c.c.Write([]byte("BDAT 3 LAST\r\nabc"))
	c.expect("503 5.5.0 MAIL needed first")
	c.cmd("NOOP", "250")
}

func TestSequenceErrors(t *testing.T) {
	r, _, _ := twoBackends(t, Config{MaxBadCommands: 4})
	c := r.dial()
	c.cmd("RCPT TO:<alice@x.test>", "503 5.5.0 MAIL needed first")
	c.cmd("DATA", "503 5.5.0 MAIL needed first")
	c.cmd("MAIL FROM:<s@x.test>", "250 ")
	c.cmd("MAIL FROM:<s@x.test>", "503 5.5.0 MAIL already given")
	c.cmd("RCPT TO:alice@x.test", "501 5.5.4 Invalid TO: Missing '<'")
	c.cmd("RCPT TO:<alice@x.test> NOTIFY=NEVER", "555 5.5.4 Unsupported parameters")
	c.cmd("RSET", "250 2.0.0 OK")
	c.cmd("RCPT TO:<alice@x.test>", "503 5.5.0 MAIL needed first")
	c.cmd("EHLO x", "500 5.5.1 Unknown command")
	c.cmd(strings.Repeat("x", 5000), "500 5.5.2 Line too long")
	c.cmd("HELO x", "421 4.7.0 usher.test Too many invalid commands.")
	if got := c.reply(); got != "EOF" {
		t.Fatalf("after 421: %q", got)
	}
}

func TestXCLIENTToBackend(t *testing.T) {
	b1 := newFakeBackend(t, "alice")
	b1.xclient = true
	r := newRig(t, Config{}, map[string]*fakeBackend{"10.0.0.1": b1}, map[string]string{"alice@x.test": "10.0.0.1"})
	c := r.dial()
	c.send("LHLO mta.example", "MAIL FROM:<s@x.test> BODY=8BITMIME", "RCPT TO:<alice@x.test>", "QUIT")
	for _, want := range []string{"250-", "250 ", "250 ", "221"} {
		c.expect(want)
	}
	lines := strings.Join(b1.received(), "\n")
	port := c.c.LocalAddr().String()[strings.LastIndexByte(c.c.LocalAddr().String(), ':')+1:]
	want := "XCLIENT ADDR=127.0.0.1 PORT=" + port + " SESSION="
	if !strings.Contains(lines, want) || !strings.Contains(lines, " TTL=4 TIMEOUT=125 PROTO=LMTP HELO=mta.example\n") {
		t.Fatalf("backend got:\n%s", lines)
	}
	if !strings.Contains(lines, "MAIL FROM:<s@x.test> BODY=8BITMIME\n") {
		t.Fatalf("backend got:\n%s", lines)
	}
}

// backend_proxy_protocol = v2: the backend reads a PROXY header naming the client before
// anything else, and the transaction goes through.
func TestPROXYHeaderToBackend(t *testing.T) {
	b1 := newFakeBackend(t, "alice")
	b1.proxy.Store(true)
	r := newRig(t, Config{BackendProxyProtocol: true}, map[string]*fakeBackend{"10.0.0.1": b1}, map[string]string{"alice@x.test": "10.0.0.1"})
	c := r.dial()
	c.send("LHLO mta.example", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "QUIT")
	for _, want := range []string{"250-", "250 ", "250 ", "221"} {
		c.expect(want)
	}
	got := b1.received()
	want := "PROXY " + c.c.LocalAddr().String() + " " + c.c.RemoteAddr().String()
	if len(got) < 2 || got[0] != want || !strings.HasPrefix(got[1], "LHLO ") {
		t.Fatalf("backend got %q, want %q first", got, want)
	}
}

func TestShutdownLetsTransactionFinish(t *testing.T) {
	r, b1, _ := twoBackends(t, Config{})
	idle := r.dial()
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>")
	for _, want := range []string{"250-", "250 ", "250 "} {
		c.expect(want)
	}
	done := make(chan error)
	go func() { done <- r.srv.Shutdown(context.Background()) }()
	idle.expect("421 4.3.2 usher.test Shutting down")
	c.cmd("DATA", "354")
	c.send("body", ".")
	c.expect("250 2.0.0 <alice@x.test>")
	c.expect("421 4.3.2")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(b1.messages("alice@x.test")) != 1 {
		t.Fatal("not delivered")
	}
}

func TestKickCutsDelivery(t *testing.T) {
	r, _, _ := twoBackends(t, Config{})
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "RCPT TO:<bob@x.test>")
	for _, want := range []string{"250-", "250 ", "250 ", "250 "} {
		c.expect(want)
	}
	r.sessions.KickAll("moved")
	c.cmd("DATA", "354")
	c.send("body", ".")
	c.expect("451 4.4.0 Proxy failed (connection lost")
	c.expect("451 4.4.0 Proxy failed (connection lost")
}
