package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestPassdbFieldsThroughUsher logs in through usher's own passwd-file whose entries carry
// Dovecot's proxy fields, in front of real Dovecot backends: a user with host=<b2> lands on
// b2 whatever the ring says and gets no user mapping; ssl=any-cert with port= reaches a
// TLS-only listener (its certificate is trusted by no one); a master-user login (user*admin,
// with master= and pass=) is logged in as the user on the user's backend.
func TestPassdbFieldsThroughUsher(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	b1, b2 := cl.Backends()[0], cl.Backends()[1]
	dir := t.TempDir()
	// Both backends take the master user admin; b2 also has an IMAP listener that speaks
	// TLS only.
	masters := filepath.Join(dir, "masters")
	cert, key, _ := testenv.TestCertFor(t, b2.IP)
	for name, data := range map[string][]byte{"masters": []byte("admin:{PLAIN}adminpass\n"), "cert.pem": cert, "key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	masterConf := fmt.Sprintf("passdb {\n  driver = passwd-file\n  master = yes\n  args = scheme=PLAIN %s\n}\n", masters)
	imaps := testenv.FreePort(t, b2.IP)
	tlsConf := fmt.Sprintf(`ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
service imap-login {
  inet_listener imaps {
    port = %[2]d
    ssl = yes
  }
}
`, dir, imaps)
	if err := b1.AddConfig(masterConf); err != nil {
		t.Fatal(err)
	}
	if err := b2.AddConfig(masterConf + tlsConf); err != nil {
		t.Fatal(err)
	}

	users := filepath.Join(dir, "users")
	write := func(lines ...string) {
		if err := os.WriteFile(users, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write()
	u := startUsher(t, cl, usherOpts{extra: "auth_failure_delay = 0\n" +
		"auth_username_chars = abcdefghijklmnopqrstuvwxyz0123456789*\n" +
		"passdb {\n  driver = passwd-file\n  args = " + users + "\n}\n"})
	// pinned: a user the ring gives to b1; tlsUser and master: any other two.
	var pinned, tlsUser, master string
	for _, name := range cl.Users() {
		switch {
		case pinned == "" && backendOf(t, u, cl, name) == b1:
			pinned = name
		case tlsUser == "":
			tlsUser = name
		case master == "" && name != pinned:
			master = name
		}
	}
	if pinned == "" || master == "" {
		t.Fatal("no user on b1")
	}
	write(
		pinned+":{PLAIN}pass::::::proxy=y host="+b2.IP.String(),
		fmt.Sprintf("%s:{PLAIN}pass::::::proxy=y host=%s port=%d ssl=any-cert", tlsUser, b2.IP, imaps),
		master+"*admin:{PLAIN}clientsecret::::::proxy=y user="+master+" master=admin pass=adminpass",
	)

	login := func(src byte, user, pass string) *rawIMAP {
		t.Helper()
		c := dialFrom(t, clientIP(u, src), u.Addr(u.IMAPPort))
		if _, tagged := c.cmd(t, "a", `LOGIN "`+user+`" `+pass); !strings.HasPrefix(tagged, "a OK") {
			t.Fatalf("LOGIN %s: %q", user, tagged)
		}
		return c
	}
	onBackend := func(b *testenv.Backend, user string) bool {
		for _, r := range b.Who(t) {
			if r.Username == user {
				return true
			}
		}
		return false
	}

	login(41, pinned, "pass")
	if !onBackend(b2, pinned) || onBackend(b1, pinned) {
		t.Errorf("%s (host=%s, the ring says b1): b1 who %v, b2 who %v", pinned, b2.IP, b1.Who(t), b2.Who(t))
	}
	login(42, tlsUser, "pass")
	if !onBackend(b2, tlsUser) {
		t.Errorf("%s (ssl=any-cert port=%d): not on b2: %v", tlsUser, imaps, b2.Who(t))
	}

	// The master user logs in as the user: its backend's session is the user's, and the
	// backend got the passdb's pass=, not the client's password.
	home := backendOf(t, u, cl, master)
	if err := home.AddMessages(master, 2, 100); err != nil {
		t.Fatal(err)
	}
	c := login(43, master+"*admin", "clientsecret")
	if untagged, tagged := c.cmd(t, "b", "SELECT INBOX"); !strings.HasPrefix(tagged, "b OK") || !containsLine(untagged, "* 2 EXISTS") {
		t.Errorf("master login as %s: SELECT %q %q", master, untagged, tagged)
	}
	if !onBackend(home, master) {
		t.Errorf("master login: %s not on %s: %v", master, home.Name, home.Who(t))
	}

	// Only the ring-routed login made a mapping; the pinned ones made none.
	var rows []map[string]any
	waitFor(t, "the master login's mapping", func() bool {
		rows = u.mustAPI("directorMap", nil)
		return len(rows) > 0
	})
	if len(rows) != 1 || rows[0]["mail server ip"] != home.IP.String() {
		t.Errorf("directorMap %v, want only %s's mapping to %s", rows, master, home.IP)
	}
	who := map[string]bool{}
	for _, r := range u.mustAPI("who", nil) {
		who[fmt.Sprint(r["username"])] = true
	}
	if !who[pinned] || !who[tlsUser] || !who[master] {
		t.Errorf("usher who %v, want %s, %s and %s", who, pinned, tlsUser, master)
	}
}
