package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestDovecotAuthServiceSQL: usher with usher_auth_service in front of two real backends,
// every login answered by a third Dovecot's auth service whose passdb is SQL (Debian's
// dovecot-sqlite; the director's `passdb { driver = sql }` section is accepted because the
// service answers it). Passwords stored as PLAIN and SHA512-CRYPT log in; a wrong one fails
// in IMAP's words and counts a penalty; the mail backend's password for a user the service
// knows with another one is refused, so the service decided, not the backend; with the
// service stopped, logins fail temporarily and count no penalty.
func TestDovecotAuthServiceSQL(t *testing.T) {
	t.Parallel()
	mail := testenv.StartDovecot(t, testenv.Options{Users: 4, Password: "pass"})
	auth := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 1, Password: "only the auth service's"})
	ab := auth.Backends()[0]
	crypt, err := exec.Command("doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "pass").Output()
	if err != nil {
		t.Fatal(err)
	}
	port := map[string]string{"proxy": "y", "port": strconv.Itoa(mail.Backends()[0].IMAPPort)}
	sql := testenv.SQLitePassdb(t, []testenv.SQLUser{
		{Name: "user002", Password: "{PLAIN}pass", Fields: port},
		{Name: "user003", Password: strings.TrimSpace(string(crypt)), Fields: port},
	})
	if err := ab.AddConfig(sql + "auth_failure_delay = 0\n"); err != nil {
		t.Fatal(err)
	}
	u := startUsher(t, mail, usherOpts{extra: "auth_failure_delay = 0\n" +
		"usher_auth_service = unix:" + filepath.Join(ab.RunDir, "auth-client") + "\n" +
		"passdb {\n  driver = sql\n  args = /etc/dovecot/dovecot-sql.conf.ext\n}\n"})

	for i, user := range []string{"user002", "user003"} {
		c := dialFrom(t, clientIP(u, byte(60+i)), u.Addr(u.IMAPPort))
		if _, tagged := c.cmd(t, "a", "LOGIN "+user+" pass"); !strings.HasPrefix(tagged, "a OK") {
			t.Errorf("%s: %q", user, tagged)
		}
	}
	src := clientIP(u, 70)
	c := dialFrom(t, src, u.Addr(u.IMAPPort))
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
