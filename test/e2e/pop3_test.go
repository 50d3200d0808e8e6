package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// poplibScript logs in through usher, once in plaintext and once after STLS, and fetches a
// message each time.
const poplibScript = `
import poplib, ssl, sys
host, port, ca, user = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=30)
caps = p.capa()
assert 'STLS' in caps and 'USER' in caps, caps
p.user(user)
p.pass_('pass')
count, size = p.stat()
resp, lines, octets = p.retr(2)
assert any(l.startswith(b'Subject:') for l in lines), lines[:10]
print('PLAIN', count, octets)
p.quit()

p = poplib.POP3(host, port, timeout=30)
p.stls(context=ssl.create_default_context(cafile=ca))
p.user(user)
p.pass_('pass')
resp, listing, _ = p.list()
resp, lines, octets = p.retr(3)
assert any(l.startswith(b'Subject:') for l in lines), lines[:10]
print('STLS', len(listing), octets)
p.quit()
`

func TestPoplibPlainAndSTLSThroughUsher(t *testing.T) {
	t.Parallel()
	requireTool(t, "python3")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user002")
	if err := b.AddMessages("user002", 3, 1500); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "pop3.py")
	os.WriteFile(script, []byte(poplibScript), 0o600)
	out := run(t, "python3", script, u.IP.String(), fmt.Sprint(u.POP3Port), filepath.Join(u.Dir, "cert.pem"), "user002")
	// Only the backend the director chose has the three messages: seeing them proves the route.
	if !strings.Contains(out, "PLAIN 3 ") || !strings.Contains(out, "STLS 3 ") {
		t.Fatalf("poplib through usher: %q", out)
	}
	waitFor(t, "pop3 sessions to end", func() bool { return len(u.mustAPI("who", nil)) == 0 })
}

// pop3Conn is a line-level POP3 client that can pick its source address.
type pop3Conn struct{ lineConn }

func dialPOP3(t *testing.T, src netip.Addr, addr string) *pop3Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &pop3Conn{newLineConn(c)}
	if l := p.line(t); l != "+OK Dovecot ready." {
		t.Fatalf("greeting %q", l)
	}
	return p
}

func (p *pop3Conn) cmd(t *testing.T, text string) string {
	t.Helper()
	fmt.Fprintf(p.c, "%s\r\n", text)
	return p.line(t)
}

// The backend sees the real client (XCLIENT), usher's who shows a pop3 session, and a kick
// ends it with an -ERR line.
func TestPOP3ClientIPWhoAndKick(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	src := clientIP(u, 78)
	p := dialPOP3(t, src, u.Addr(u.POP3Port))
	if r := p.cmd(t, "USER user006"); r != "+OK" {
		t.Fatalf("USER: %q", r)
	}
	if r := p.cmd(t, "PASS wrong"); r != "-ERR [AUTH] Authentication failed." {
		t.Fatalf("wrong PASS: %q", r)
	}
	if r := p.cmd(t, "AUTH PLAIN AHVzZXIwMDYAcGFzcw=="); r != "+OK Logged in." {
		t.Fatalf("AUTH: %q", r)
	}
	if r := p.cmd(t, "STAT"); r != "+OK 0 0" {
		t.Fatalf("STAT: %q", r)
	}
	b := backendOf(t, u, cl, "user006")
	rows := b.Who(t)
	if len(rows) != 1 || rows[0].Username != "user006" || rows[0].Service != "pop3" || len(rows[0].IPs) != 1 || rows[0].IPs[0] != src {
		t.Fatalf("backend who = %+v, want user006 pop3 from %s", rows, src)
	}
	who := u.mustAPI("who", nil)
	if len(who) != 1 || who[0]["username"] != "user006" || who[0]["service"] != "pop3" || who[0]["ips"] != "("+src.String()+")" {
		t.Fatalf("usher who = %v", who)
	}
	u.mustAPI("kick", map[string]any{"mask": []string{"user006"}})
	if l := p.line(t); !strings.HasPrefix(l, "-ERR ") {
		t.Fatalf("after kick: %q", l)
	}
	if l := p.line(t); !strings.HasPrefix(l, "EOF") {
		t.Fatalf("still connected: %q", l)
	}
	waitFor(t, "kicked session to go", func() bool { return len(u.mustAPI("who", nil)) == 0 })
}

// A dead backend gets Dovecot's temporary-failure text and the client may retry.
func TestPOP3DeadBackend(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user008")
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	p := dialPOP3(t, clientIP(u, 79), u.Addr(u.POP3Port))
	if r := p.cmd(t, "USER user008"); r != "+OK" {
		t.Fatalf("USER: %q", r)
	}
	if r := p.cmd(t, "PASS pass"); r != "-ERR [SYS/TEMP] Account is temporarily unavailable." {
		t.Fatalf("PASS to a dead backend: %q", r)
	}
	if r := p.cmd(t, "QUIT"); r != "+OK Logging out" {
		t.Fatalf("QUIT: %q", r)
	}
}
