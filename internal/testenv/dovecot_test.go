package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

var localhost = netip.MustParseAddr("127.0.0.1")

// curlExamine runs `curl imap://.../INBOX -X 'EXAMINE INBOX'` and returns the message count.
func curlExamine(t *testing.T, b *Backend, user string) int {
	t.Helper()
	curl := requireTool(t, "curl")
	out, err := exec.Command(curl, "-s", "-S", "--max-time", "30",
		"--url", "imap://"+b.HostPort(b.IMAPPort)+"/INBOX",
		"--user", user+":pass", "-X", "EXAMINE INBOX").CombinedOutput()
	if err != nil {
		t.Fatalf("curl on %s: %v\n%s", b.Name, err, out)
	}
	return existsCount(t, string(out))
}

func existsCount(t *testing.T, out string) int {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "* %d EXISTS", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no EXISTS in %q", out)
	return 0
}

// pythonCount logs in with Python's imaplib and returns the INBOX message count.
func pythonCount(t *testing.T, b *Backend, user string) int {
	t.Helper()
	py := requireTool(t, "python3")
	const script = `import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=30)
m.login(sys.argv[3], "pass")
typ, data = m.select("INBOX", readonly=True)
print("* %s EXISTS" % data[0].decode())
m.logout()
`
	out, err := exec.Command(py, "-c", script, b.IP.String(), fmt.Sprint(b.IMAPPort), user).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib on %s: %v\n%s", b.Name, err, out)
	}
	return existsCount(t, string(out))
}

func TestTwoBackends(t *testing.T) {
	c := StartDovecot(t, Options{N: 2, Users: 5})
	bs := c.Backends()
	if len(bs) != 2 || bs[0].IP == bs[1].IP || bs[0].IMAPPort != bs[1].IMAPPort {
		t.Fatalf("want two backends on distinct IPs sharing ports, got %+v %+v", bs[0], bs[1])
	}
	b1, b2 := bs[0], bs[1]

	t.Run("curl login", func(t *testing.T) {
		for _, b := range bs {
			if n := curlExamine(t, b, "user001"); n != 0 {
				t.Errorf("%s: fresh INBOX has %d messages", b.Name, n)
			}
		}
	})
	t.Run("seed on one backend only", func(t *testing.T) {
		if err := b1.AddMessages("user003", 5, 2000); err != nil {
			t.Fatal(err)
		}
		if n := b1.MaildirCount("user003", "INBOX"); n != 5 {
			t.Errorf("b1 MaildirCount = %d, want 5", n)
		}
		if n := curlExamine(t, b1, "user003"); n != 5 {
			t.Errorf("curl on b1 sees %d messages, want 5", n)
		}
		if n := pythonCount(t, b1, "user003"); n != 5 {
			t.Errorf("imaplib on b1 sees %d messages, want 5", n)
		}
		// Each backend has its own mail root: a misrouted user sees an empty INBOX.
		if n := pythonCount(t, b2, "user003"); n != 0 {
			t.Errorf("imaplib on b2 sees %d messages, want 0", n)
		}
		if n := b2.MaildirCount("user003", "INBOX"); n != 0 {
			t.Errorf("b2 MaildirCount = %d, want 0", n)
		}
	})
	t.Run("who shows open sessions", func(t *testing.T) {
		// A direct session shows the connection's source address.
		direct := imapLogin(t, dialFrom(t, localhost, b2.HostPort(b2.IMAPPort)), "user004", "")
		// A trusted proxy's ID x-originating-ip replaces it.
		proxied := imapLogin(t, dialFrom(t, localhost, b2.HostPort(b2.IMAPPort)), "user005", "192.0.2.7")
		rows := b2.Who(t)
		want := map[string]netip.Addr{"user004": localhost, "user005": netip.MustParseAddr("192.0.2.7")}
		for user, ip := range want {
			r, ok := findWho(rows, user, "imap")
			if !ok || r.Connections != 1 || len(r.IPs) != 1 || r.IPs[0] != ip || len(r.PIDs) != 1 {
				t.Errorf("who row for %s = %+v (found %v), want 1 connection from %v; all rows %+v", user, r, ok, ip, rows)
			}
		}
		if rows := b1.Who(t); len(rows) != 0 {
			t.Errorf("b1 who = %+v, want nobody", rows)
		}
		direct.send("z LOGOUT")
		proxied.send("z LOGOUT")
		direct.until("z OK")
		proxied.until("z OK")
	})
}

// imapLogin logs in (after an ID with x-originating-ip when ip is set) and selects INBOX.
func imapLogin(t *testing.T, l *lineConn, user, ip string) *lineConn {
	t.Helper()
	if g := l.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	if ip != "" {
		l.send(fmt.Sprintf(`i ID ("x-originating-ip" "%s" "x-originating-port" "40000")`, ip))
		if s, _ := l.until("i "); !strings.HasPrefix(s, "i OK") {
			t.Fatalf("ID: %q", s)
		}
	}
	l.send("a LOGIN " + user + " pass")
	if s, _ := l.until("a "); !strings.HasPrefix(s, "a OK") {
		t.Fatalf("LOGIN %s: %q", user, s)
	}
	l.send("s SELECT INBOX")
	if s, _ := l.until("s "); !strings.HasPrefix(s, "s OK") {
		t.Fatalf("SELECT: %q", s)
	}
	return l
}

func findWho(rows []WhoRow, user, service string) (WhoRow, bool) {
	for _, r := range rows {
		if r.Username == user && r.Service == service {
			return r, true
		}
	}
	return WhoRow{}, false
}

func TestOtherProtocols(t *testing.T) {
	c := StartDovecot(t, Options{N: 1, Users: 3})
	b := c.Backends()[0]

	t.Run("pop3", func(t *testing.T) {
		l := dialFrom(t, localhost, b.HostPort(b.POP3Port))
		for _, cmd := range []string{"", "USER user001", "PASS pass", "STAT", "QUIT"} {
			if cmd != "" {
				l.send(cmd)
			}
			if s := l.line(); !strings.HasPrefix(s, "+OK") {
				t.Fatalf("%q: %q", cmd, s)
			}
		}
	})
	t.Run("lmtp strips the domain", func(t *testing.T) {
		l := dialFrom(t, localhost, b.HostPort(b.LMTPPort))
		l.until("220 ")
		l.send("LHLO testenv")
		l.until("250 ")
		for _, cmd := range []string{"MAIL FROM:<a@example.test>", "RCPT TO:<user002@anchor.test>"} {
			l.send(cmd)
			if s := l.line(); !strings.HasPrefix(s, "250") {
				t.Fatalf("%q: %q", cmd, s)
			}
		}
		l.send("DATA")
		l.until("354")
		l.send("Subject: via lmtp\r\n\r\nhello\r\n.")
		if s := l.line(); !strings.HasPrefix(s, "250") {
			t.Fatalf("DATA: %q", s)
		}
		l.send("QUIT")
		if n := b.MaildirCount("user002", "INBOX"); n != 1 {
			t.Errorf("user002 has %d messages after LMTP, want 1", n)
		}
	})
	t.Run("managesieve greets", func(t *testing.T) {
		l := dialFrom(t, localhost, b.HostPort(b.SievePort))
		if s, _ := l.until("OK"); !strings.Contains(s, "OK") {
			t.Fatalf("greeting %q", s)
		}
	})
	t.Run("doveadm api errors", func(t *testing.T) {
		_, err := b.Doveadm("who", map[string]any{"mask": []string{"127.0.0.1", "10.0.0.0/8"}})
		if de, ok := err.(*DoveadmError); !ok || de.ExitCode != 64 {
			t.Fatalf("who with two networks: err = %v, want exit code 64", err)
		}
	})
}

func TestKillStartStop(t *testing.T) {
	c := StartDovecot(t, Options{N: 1, Users: 2})
	b := c.Backends()[0]
	open := imapLogin(t, dialFrom(t, localhost, b.HostPort(b.IMAPPort)), "user001", "")

	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	if b.Running() {
		t.Fatal("running after Kill")
	}
	// The open session is cut, not closed with BYE by a live server.
	open.send("n NOOP")
	if _, err := open.r.ReadString('\n'); err == nil {
		t.Error("session survived Kill")
	}
	if _, err := net.Dial("tcp", b.HostPort(b.IMAPPort)); err == nil {
		t.Error("IMAP port still accepts after Kill")
	}

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err == nil {
		t.Error("second Start of a running backend succeeded")
	}
	if n := curlExamine(t, b, "user001"); n != 0 {
		t.Errorf("after restart: %d messages", n)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", b.HostPort(b.IMAPPort)); err == nil {
		t.Error("IMAP port still accepts after Stop")
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if n := curlExamine(t, b, "user001"); n != 0 {
		t.Errorf("after second start: %d messages", n)
	}
}

func TestSequentialClustersAndSharedMail(t *testing.T) {
	first := StartDovecot(t, Options{N: 1, Users: 1})
	second := StartDovecot(t, Options{N: 2, Users: 2, SharedMail: true,
		IPs: []netip.Addr{netip.MustParseAddr("127.0.0.11"), netip.MustParseAddr("127.0.0.12")}})
	if first.Backends()[0].IP == second.Backends()[0].IP {
		t.Fatal("two clusters share an address")
	}
	b1, b2 := second.Backends()[0], second.Backends()[1]
	if b1.IP != netip.MustParseAddr("127.0.0.11") {
		t.Errorf("Options.IPs ignored: %v", b1.IP)
	}
	if err := b1.AddMessagesTo("user002", "Archive/2024", 3, 500); err != nil {
		t.Fatal(err)
	}
	if n := b2.MaildirCount("user002", "Archive/2024"); n != 3 {
		t.Errorf("shared mail: b2 sees %d, want 3", n)
	}
	l := imapLogin(t, dialFrom(t, localhost, b2.HostPort(b2.IMAPPort)), "user002", "")
	l.send(`x STATUS "Archive.2024" (MESSAGES)`)
	if s, _ := l.until("* STATUS"); !strings.Contains(s, "MESSAGES 3") {
		t.Errorf("STATUS = %q", s)
	}
}
