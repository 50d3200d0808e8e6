package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// lmtpOpts makes usher derive LMTP user names as the test backends do: user003@anchor.test is
// the user user003 (the reference deployment's auth_username_format = %Ln).
var lmtpOpts = usherOpts{extra: "auth_username_format = %Ln"}

// usersOnBothBackends picks n users so that each backend has at least one, and returns them
// with their backends.
func usersOnBothBackends(t *testing.T, u *usher, cl *testenv.Cluster, n int) ([]string, map[string]*testenv.Backend) {
	t.Helper()
	on := map[*testenv.Backend][]string{}
	where := map[string]*testenv.Backend{}
	for _, user := range cl.Users() {
		b := backendOf(t, u, cl, user)
		on[b] = append(on[b], user)
		where[user] = b
	}
	if len(on) < 2 {
		t.Fatalf("all users hash to one backend")
	}
	var picked []string
	// Round-robin over the backends so both are represented.
	for i := 0; len(picked) < n; i++ {
		progressed := false
		for _, b := range cl.Backends() {
			if i < len(on[b]) && len(picked) < n {
				picked = append(picked, on[b][i])
				progressed = true
			}
		}
		if !progressed {
			t.Fatalf("not enough users")
		}
	}
	return picked, where
}

func rcptList(users []string) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u + "@anchor.test"
	}
	return out
}

// checkDeliveredOnce asserts every user holds exactly one message, on its own backend only.
func checkDeliveredOnce(t *testing.T, cl *testenv.Cluster, users []string, where map[string]*testenv.Backend) {
	t.Helper()
	for _, user := range users {
		home := where[user]
		if n := home.MaildirCount(user, "INBOX"); n != 1 {
			t.Errorf("%s has %d messages on its backend %s, want 1", user, n, home.Name)
		}
		if n := otherBackend(cl, home).MaildirCount(user, "INBOX"); n != 0 {
			t.Errorf("%s has %d messages on the wrong backend", user, n)
		}
	}
}

func TestSwaksLMTPThreeRecipientsBothBackends(t *testing.T) {
	t.Parallel()
	requireTool(t, "swaks")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, lmtpOpts)
	users, where := usersOnBothBackends(t, u, cl, 3)
	out := run(t, "swaks", "--protocol", "LMTP", "--server", u.IP.String(), "--port", fmt.Sprint(u.LMTPPort),
		"--from", "sender@anchor.test", "--to", strings.Join(rcptList(users), ","),
		"--header", "Subject: lmtp through usher", "--body", "one message, three recipients",
		"--timeout", "60")
	for _, r := range rcptList(users) {
		if !strings.Contains(out, "<-  250 2.0.0 <"+r+"> ") {
			t.Fatalf("no 250 for %s in swaks output:\n%s", r, out)
		}
	}
	checkDeliveredOnce(t, cl, users, where)
	// Deliveries are sessions only while they run.
	waitFor(t, "lmtp sessions to end", func() bool { return len(u.mustAPI("who", nil)) == 0 })
}

// lmtpConn is a line-level LMTP client for writing a message in two halves.
type lmtpConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialLMTP connects to usher's LMTP listener and reads the greeting.
func dialLMTP(t *testing.T, u *usher) *lmtpConn {
	t.Helper()
	c, err := net.Dial("tcp", u.Addr(u.LMTPPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l := &lmtpConn{t: t, c: c, r: bufio.NewReader(c)}
	l.expect("220 ")
	return l
}

func (l *lmtpConn) send(lines ...string) {
	l.t.Helper()
	if _, err := fmt.Fprint(l.c, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lmtpConn) reply() string {
	l.t.Helper()
	l.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var lines []string
	for {
		s, err := l.r.ReadString('\n')
		if err != nil {
			l.t.Fatalf("reading reply: %v (so far %q)", err, lines)
		}
		s = strings.TrimRight(s, "\r\n")
		lines = append(lines, s)
		if len(s) < 4 || s[3] != '-' {
			return strings.Join(lines, "|")
		}
	}
}

func (l *lmtpConn) expect(prefix string) string {
	l.t.Helper()
	got := l.reply()
	if !strings.HasPrefix(got, prefix) {
		l.t.Fatalf("got %q, want %q", got, prefix)
	}
	return got
}

func TestLMTPBackendKilledDuringData(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, lmtpOpts)
	users, where := usersOnBothBackends(t, u, cl, 4)
	victim := where[users[0]]

	c, err := net.Dial("tcp", u.Addr(u.LMTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &lmtpConn{t: t, c: c, r: bufio.NewReader(c)}
	l.expect("220 ")
	l.send("LHLO test.client")
	l.expect("250-")
	transaction := func(users []string) {
		l.send("MAIL FROM:<sender@anchor.test>")
		l.expect("250 2.1.0")
		for _, r := range rcptList(users) {
			l.send("RCPT TO:<" + r + ">")
			l.expect("250 2.1.5")
		}
		l.send("DATA")
		l.expect("354")
	}
	body := strings.Repeat("a line of the message body, long enough to matter\r\n", 2000)

	transaction(users)
	l.send("Subject: killed backend", "", body[:len(body)/2])
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	l.send(body[len(body)/2:] + ".")
	var retry []string
	for _, user := range users {
		got := l.reply()
		switch {
		case where[user] == victim && strings.HasPrefix(got, "451 4.4.0 Proxy failed ("):
			retry = append(retry, user)
		case where[user] != victim && strings.HasPrefix(got, "250 2.0.0 <"+user+"@anchor.test> "):
		default:
			t.Fatalf("%s on %s: %q", user, where[user].Name, got)
		}
	}
	t.Logf("451 for %v on the killed backend %s", retry, victim.Name)

	// The sender retries only the recipients that got 451, once the backend is back.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	transaction(retry)
	l.send("Subject: killed backend", "", body+".")
	for _, user := range retry {
		l.expect("250 2.0.0 <" + user + "@anchor.test> ")
	}
	l.send("QUIT")
	l.expect("221")
	checkDeliveredOnce(t, cl, users, where)
}
