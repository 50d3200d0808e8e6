package passdb

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/testenv"
)

// migratedSchemes are the schemes of passwd-files sites carry over from Dovecot (issue 17).
var migratedSchemes = []string{"BLF-CRYPT", "MD5-CRYPT", "SSHA256", "SSHA512", "PBKDF2", "ARGON2ID"}

// doveadmPw hashes pass with Debian's `doveadm pw -s scheme`.
func doveadmPw(t *testing.T, scheme, pass string) string {
	t.Helper()
	out, err := exec.Command("doveadm", "pw", "-s", scheme, "-p", pass).Output()
	if err != nil {
		t.Fatalf("doveadm pw -s %s: %v", scheme, err)
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "{"+scheme+"}") {
		t.Fatalf("doveadm pw -s %s wrote %q", scheme, h)
	}
	return h
}

type checkCall struct{ scheme, stored string }

// recordChecks makes checkStored record what each Verify computes.
func recordChecks(t *testing.T) *[]checkCall {
	var calls []checkCall
	t.Cleanup(func() { checkStored = Check })
	checkStored = func(scheme, stored, pass string) (bool, error) {
		calls = append(calls, checkCall{scheme, stored})
		return Check(scheme, stored, pass)
	}
	return &calls
}

// TestDoveadmPwFile writes a passwd-file with `doveadm pw` for each scheme: every user logs
// in with its password, a wrong one fails, and a wrong password, a missing user and a right
// password each cost one check of that scheme with the same work factors (a missing user is
// checked against a decoy from the file), so the time taken tells nothing apart.
func TestDoveadmPwFile(t *testing.T) {
	if _, err := exec.LookPath("doveadm"); err != nil {
		testenv.RequireDovecot(t)
		t.Skip("doveadm not found")
	}
	for _, scheme := range migratedSchemes {
		t.Run(scheme, func(t *testing.T) {
			var file strings.Builder
			for i := range 2 {
				fmt.Fprintf(&file, "u%d:%s::::::\n", i, doveadmPw(t, scheme, fmt.Sprintf("pw %d %s", i, scheme)))
			}
			path := writeUsers(t, t.TempDir(), "users", file.String())
			db, err := New([]config.Passdb{{Driver: "passwd-file", Args: path}}, "")
			if err != nil {
				t.Fatal(err)
			}
			calls := recordChecks(t)
			for _, c := range []struct {
				user, pass string
				want       bool
			}{
				{"u0", "pw 0 " + scheme, true}, {"u1", "pw 1 " + scheme, true},
				{"u0", "pw 1 " + scheme, false}, {"u1", "", false}, {"nosuch", "pw 0 " + scheme, false},
			} {
				*calls = nil
				ok, err := db.Verify("imap", c.user, c.pass)
				if ok != c.want || err != nil {
					t.Errorf("Verify(%s, %q) = %v, %v; want %v", c.user, c.pass, ok, err, c.want)
				}
				if len(*calls) != 1 || (*calls)[0].scheme != scheme || workOf((*calls)[0].stored) != workOf(strings.TrimPrefix(strings.Split(file.String(), ":")[1], "{"+scheme+"}")) {
					t.Errorf("Verify(%s): checks %v, want one %s check with the file's work factors", c.user, *calls, scheme)
				}
			}
		})
	}
}

// workOf is the part of a stored hash that sets its cost: the bcrypt cost, the PBKDF2
// rounds, the Argon2 parameters ("" for the fixed-cost schemes).
func workOf(stored string) string {
	f := strings.Split(stored, "$")
	switch {
	case len(f) > 2 && strings.HasPrefix(f[1], "2"):
		return f[2]
	case len(f) == 5 && f[1] == "1":
		return f[3]
	case len(f) == 6 && strings.HasPrefix(f[1], "argon2"):
		return f[1] + f[3]
	}
	return ""
}

// A file mixing schemes: an unknown user is checked against the commonest one.
func TestDecoyIsCommonestScheme(t *testing.T) {
	path := writeUsers(t, t.TempDir(), "users", `a:{PLAIN}x
b:{SHA256-CRYPT}$5$W2Wz1JCuYmJcCP8O$AmuBRi5AGPObA7WWuzj26mo6f2gSNXCvnty0nMpWeMD
c:{SHA256-CRYPT}$5$rounds=6000$zgu7AAzTNtfCIntp$x
d:{SSHA}lRUy3oca0Hnnu1h3ElemuMy8RnWnKiHf
e:::::: nopassword=y
f:
`)
	db, err := New([]config.Passdb{{Driver: "passwd-file", Args: path}}, "")
	if err != nil {
		t.Fatal(err)
	}
	calls := recordChecks(t)
	for _, user := range []string{"nosuch", "f"} {
		*calls = nil
		if ok, err := db.Verify("imap", user, "x"); ok || err != nil {
			t.Errorf("%s: %v %v", user, ok, err)
		}
		if len(*calls) != 1 || (*calls)[0].scheme != "SHA256-CRYPT" || !strings.HasPrefix((*calls)[0].stored, "$5$") {
			t.Errorf("%s: checks %v, want one SHA256-CRYPT decoy", user, *calls)
		}
	}
}
