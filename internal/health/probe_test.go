package health

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestProbeDovecot runs every kind of check against a real Dovecot backend.
func TestProbeDovecot(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 2})
	b := cl.Backends()[0]
	ok := func(p Probe) {
		t.Helper()
		p.Timeout = 10 * time.Second
		if err := p.Check(context.Background(), b.IP); err != nil {
			t.Errorf("%s check (user %q): %v", p.Kind, p.User, err)
		}
	}
	ok(Probe{Kind: KindIMAP, Port: b.IMAPPort})
	ok(Probe{Kind: KindIMAP, Port: b.IMAPPort, User: "user001", Password: "pass"})
	ok(Probe{Kind: KindPOP3, Port: b.POP3Port})
	ok(Probe{Kind: KindPOP3, Port: b.POP3Port, User: "user002", Password: "pass"})
	ok(Probe{Kind: KindLMTP, Port: b.LMTPPort})

	bad := Probe{Kind: KindIMAP, Port: b.IMAPPort, User: "user001", Password: "wrong", Timeout: 10 * time.Second}
	err := bad.Check(context.Background(), b.IP)
	if err == nil || !strings.Contains(err.Error(), "LOGIN failed") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("IMAP login with a wrong password: %v", err)
	}
	bad = Probe{Kind: KindPOP3, Port: b.POP3Port, User: "user001", Password: "wrong", Timeout: 10 * time.Second}
	if err := bad.Check(context.Background(), b.IP); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("POP3 login with a wrong password: %v", err)
	}
	// The IMAP check on the POP3 port sees a POP3 greeting.
	bad = Probe{Kind: KindIMAP, Port: b.POP3Port, Timeout: 10 * time.Second}
	if err := bad.Check(context.Background(), b.IP); err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Errorf("IMAP check of a POP3 port: %v", err)
	}
	// STARTTLS against a backend without TLS is refused.
	bad = Probe{Kind: KindIMAP, Port: b.IMAPPort, SSL: "starttls", Timeout: 10 * time.Second}
	if err := bad.Check(context.Background(), b.IP); err == nil {
		t.Error("STARTTLS check of a backend without TLS passed")
	}
	// Probes go out from Source: Dovecot logs it as the remote address.
	src := b.IP.As4()
	src[3] = 99
	p := Probe{Kind: KindIMAP, Port: b.IMAPPort, Timeout: 10 * time.Second, Source: netip.AddrFrom4(src)}
	if err := p.Check(context.Background(), b.IP); err != nil {
		t.Fatal(err)
	}
	want := "rip=" + p.Source.String() + ","
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(b.LogPath)
		if strings.Contains(string(data), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend log never shows %s:\n%s", want, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Kill()
	if err := (&Probe{Kind: KindIMAP, Port: b.IMAPPort, Timeout: 10 * time.Second}).Check(context.Background(), b.IP); err == nil {
		t.Error("check of a killed backend passed")
	}
}

// TestProbeTimeout: a backend that accepts but never greets fails within
// the timeout.
func TestProbeTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ap := netip.MustParseAddrPort(l.Addr().String())
	p := Probe{Kind: KindLMTP, Port: int(ap.Port()), Timeout: 200 * time.Millisecond}
	start := time.Now()
	if err := p.Check(context.Background(), ap.Addr()); err == nil {
		t.Fatal("silent backend passed")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("check took %v", d)
	}
}

// FuzzProbeReplies: whatever a backend answers, a check ends (no panic,
// no hang past the stream's end) and never passes on an empty answer.
func FuzzProbeReplies(f *testing.F) {
	f.Add(uint8(0), []byte("* OK ready\r\nh2 OK logged in\r\nh3 OK bye\r\n"))
	f.Add(uint8(1), []byte("+OK ready\r\n+OK\r\n+OK\r\n"))
	f.Add(uint8(2), []byte("220 lmtp\r\n250-x\r\n250 ok\r\n"))
	f.Add(uint8(0), []byte("* OK\r\nh1 OK begin\r\n"))
	f.Fuzz(func(t *testing.T, kind uint8, reply []byte) {
		p := Probe{Kind: []string{KindIMAP, KindPOP3, KindLMTP}[kind%3], User: "u", Password: "p"}
		if kind&4 != 0 {
			p.SSL = "starttls"
		}
		client, server := net.Pipe()
		go func() {
			go io.Copy(io.Discard, server)
			server.Write(reply)
			server.Close()
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		err := p.dialogue(client, netip.MustParseAddrPort("127.0.0.1:143"))
		client.Close()
		if err == nil && len(reply) == 0 {
			t.Fatal("empty answer passed")
		}
	})
}

// A backend listening with haproxy = yes (backend_proxy_protocol = v2) passes a check that
// opens with a PROXY LOCAL header and refuses one without.
func TestProbeHAProxyBackend(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 1, HAProxy: true})
	b := cl.Backends()[0]
	for _, kind := range []string{KindIMAP, KindPOP3, KindLMTP} {
		port := map[string]int{KindIMAP: b.IMAPPort, KindPOP3: b.POP3Port, KindLMTP: b.LMTPPort}[kind]
		p := Probe{Kind: kind, Port: port, User: "user001", Password: "pass", Timeout: 10 * time.Second, ProxyHeader: true}
		if kind == KindLMTP {
			p.User, p.Password = "", ""
		}
		if err := p.Check(context.Background(), b.IP); err != nil {
			t.Errorf("%s check with a PROXY header: %v", kind, err)
		}
	}
	p := Probe{Kind: KindIMAP, Port: b.IMAPPort, Timeout: 10 * time.Second}
	if err := p.Check(context.Background(), b.IP); err == nil {
		t.Error("a check without a PROXY header passed a haproxy = yes listener")
	}
}
