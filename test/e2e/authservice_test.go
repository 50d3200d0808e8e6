package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestDovecotAuthServiceSQL: usher with usher_auth_service in front of two real backends,
// every login answered by a third Dovecot's auth service whose passdb is SQL (Debian's
// dovecot-sqlite; the director's `passdb { driver = sql }` section is accepted because the
// service answers it). Passwords stored as PLAIN and SHA512-CRYPT log in on the port the
// passdb names (usher's backend_*_port are wrong on purpose); the service's user= rewrite is
// the routed and logged-in name; a wrong password fails in IMAP's words and counts a penalty;
// the mail backend's password for a user the service knows with another one is refused, so
// the service decided, not the backend; an LMTP recipient is looked up on the service's
// auth-userdb socket and delivered on its passdb port, an unknown one gets 550; with the
// service stopped, logins fail temporarily and count no penalty.
func TestDovecotAuthServiceSQL(t *testing.T) {
	t.Parallel()
	mail := testenv.StartDovecot(t, testenv.Options{Users: 5, Password: "pass"})
	mb := mail.Backends()[0]
	auth := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 1, Password: "only the auth service's"})
	ab := auth.Backends()[0]
	crypt, err := exec.Command("doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "pass").Output()
	if err != nil {
		t.Fatal(err)
	}
	port := map[string]string{"proxy": "y", "port": strconv.Itoa(mb.IMAPPort)}
	sql, _ := testenv.SQLitePassdb(t, []testenv.SQLUser{
		{Name: "user002", Password: "{PLAIN}pass", Fields: port},
		{Name: "user003", Password: strings.TrimSpace(string(crypt)), Fields: port},
		{Name: "alias5", Password: "{PLAIN}pass", Fields: map[string]string{"user": "user005", "proxy": "y", "port": port["port"]}},
		{Name: "user004", Password: "{PLAIN}pass", Fields: map[string]string{"proxy": "y", "port": strconv.Itoa(mb.LMTPPort)}},
	})
	if err := ab.AddConfig(sql + "auth_failure_delay = 0\n"); err != nil {
		t.Fatal(err)
	}
	u := startUsher(t, mail, usherOpts{extra: "auth_failure_delay = 0\nbackend_imap_port = 9\nbackend_lmtp_port = 9\nusher_health_check = none\n" +
		"usher_auth_service = unix:" + filepath.Join(ab.RunDir, "auth-client") + "\n" +
		"passdb {\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}\n"})

	for i, user := range []string{"user002", "user003"} {
		c := dialFrom(t, clientIP(u, byte(60+i)), u.Addr(u.IMAPPort))
		if _, tagged := c.cmd(t, "a", "LOGIN "+user+" pass"); !strings.HasPrefix(tagged, "a OK") {
			t.Errorf("%s: %q", user, tagged)
		}
	}
	c := dialFrom(t, clientIP(u, 62), u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN alias5 pass"); !strings.HasPrefix(tagged, "a OK") {
		t.Errorf("alias5: %q", tagged)
	}
	if !slices.ContainsFunc(backendOf(t, u, mail, "user005").Who(t), func(r testenv.WhoRow) bool {
		return r.Username == "user005" && slices.Contains(r.IPs, clientIP(u, 62))
	}) {
		t.Error("alias5 is not user005 on the backend user005 maps to")
	}
	if !slices.ContainsFunc(u.mustAPI("who", nil), func(r map[string]any) bool { return r["username"] == "user005" }) {
		t.Errorf("usher's who has no user005: %v", u.mustAPI("who", nil))
	}

	l := dialLMTP(t, u)
	l.send("LHLO test.client")
	l.expect("250-")
	l.send("MAIL FROM:<sender@anchor.test>")
	l.expect("250 2.1.0")
	l.send("RCPT TO:<user004@anchor.test>")
	l.expect("250 2.1.5")
	l.send("RCPT TO:<nosuch@anchor.test>")
	l.expect("550 5.1.1 <nosuch@anchor.test> User doesn't exist")
	l.send("DATA")
	l.expect("354")
	l.send("Subject: through the auth service", "", "hello", ".")
	l.expect("250 2.0.0 ")
	if n := backendOf(t, u, mail, "user004").MaildirCount("user004", "INBOX"); n != 1 {
		t.Errorf("user004 has %d messages on its backend, want 1", n)
	}

	src := clientIP(u, 70)
	c = dialFrom(t, src, u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN user002 wrong"); tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("wrong password: %q", tagged)
	}
	if rows := u.mustAPI("penalty", nil); len(rows) != 1 || rows[0]["IP"] != src.String() || rows[0]["penalty"] != "1" {
		t.Errorf("penalty after a wrong password = %v", rows)
	}
	// user001's mail backend password is "pass"; the auth service knows another one.
	c = dialFrom(t, clientIP(u, 71), u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN user001 pass"); tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("the backend's password, not the service's: %q", tagged)
	}

	if err := ab.Stop(); err != nil {
		t.Fatal(err)
	}
	src = clientIP(u, 72)
	c = dialFrom(t, src, u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN user002 pass"); !strings.HasPrefix(tagged, "a NO [UNAVAILABLE] Temporary authentication failure.") {
		t.Errorf("service stopped: %q", tagged)
	}
	if rows := u.mustAPI("penalty", map[string]any{"netmask": src.String() + "/32"}); len(rows) != 0 {
		t.Errorf("penalty for a temporary failure = %v", rows)
	}
}
