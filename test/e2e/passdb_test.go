package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestPassdbSchemesThroughUsher logs in through usher's own passdb with a passwd-file written
// by Debian's `doveadm pw -s SCHEME` for each scheme a site migrating from Dovecot carries:
// the right password logs in (the backend then checks it again), a wrong one is refused. The
// last user's file entry hashes another password than the backend's, so its refusal shows
// that usher, not the backend, decided.
func TestPassdbSchemesThroughUsher(t *testing.T) {
	t.Parallel()
	schemes := []string{"BLF-CRYPT", "MD5-CRYPT", "SSHA256", "SSHA512", "PBKDF2", "ARGON2ID"}
	cl := testenv.StartDovecot(t, testenv.Options{Users: len(schemes) + 1, Password: "pass"})
	dir := t.TempDir()
	var file strings.Builder
	for i, s := range append(schemes, "SHA512-CRYPT") {
		pw := "pass"
		if i == len(schemes) {
			pw = "not the backend's"
		}
		out, err := exec.Command("doveadm", "pw", "-s", s, "-p", pw).Output()
		if err != nil {
			t.Fatalf("doveadm pw -s %s: %v", s, err)
		}
		fmt.Fprintf(&file, "%s:%s::::::proxy=y\n", testenv.UserName(i+1), strings.TrimSpace(string(out)))
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	u := startUsher(t, cl, usherOpts{extra: "auth_failure_delay = 0\npassdb {\n  driver = passwd-file\n  args = " + users + "\n}\n"})
	for i, s := range schemes {
		user := testenv.UserName(i + 1)
		// a source address per client keeps the failures' penalties apart
		c := dialFrom(t, clientIP(u, byte(100+i)), u.Addr(u.IMAPPort))
		if _, tagged := c.cmd(t, "a", "LOGIN "+user+" wrong"); tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Errorf("%s (%s), wrong password: %q", user, s, tagged)
		}
		c = dialFrom(t, clientIP(u, byte(120+i)), u.Addr(u.IMAPPort))
		if _, tagged := c.cmd(t, "b", "LOGIN "+user+" pass"); !strings.HasPrefix(tagged, "b OK") {
			t.Errorf("%s (%s), right password: %q", user, s, tagged)
		}
	}
	last := testenv.UserName(len(schemes) + 1)
	c := dialFrom(t, clientIP(u, 140), u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN "+last+" pass"); tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("%s with the backend's password but not usher's: %q", last, tagged)
	}
	if _, tagged := c.cmd(t, "b", `LOGIN `+last+` "not the backend's"`); !strings.HasPrefix(tagged, "b NO") {
		t.Errorf("%s with usher's password but not the backend's: %q", last, tagged)
	}
}
