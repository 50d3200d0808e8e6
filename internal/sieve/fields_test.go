package sieve

import (
	"encoding/base64"
	"slices"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// The passdb's reply fields decide the backend login as Pigeonhole's proxy makes it:
// master= with pass= in AUTHENTICATE PLAIN for the user, nologin refused with the reason,
// a reply without proxy refused.
func TestPassdbFields(t *testing.T) {
	pdb := &logintest.Passdb{Users: map[string]string{"u1": "c1", "u4": "c4", "u5": "c5", "u7": "c7"}}
	pdb.SetFields("u1", "proxy", "master=admin", "pass=pass")
	pdb.SetFields("u4", "nologin", "reason=Moved to mail.example.org.")
	pdb.SetFields("u5")
	pdb.SetFields("u7", "nologin")
	h := newHarness(t, Config{}, func(env *login.Env) { env.Passdb = pdb })
	auth := func(user, pass, want string) {
		t.Helper()
		c := h.Dial()
		c.Expect(caps("Dovecot ready.")...)
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		c.Send(`AUTHENTICATE "PLAIN" "` + ir + `"`)
		c.Expect(want)
	}
	auth("u1", "c1", `OK "Logged in."`)
	ir := base64.StdEncoding.EncodeToString([]byte("u1\x00admin\x00pass"))
	if got := h.Backend.Received(); !slices.Contains(got, `AUTHENTICATE "PLAIN" "`+ir+`"`) {
		t.Errorf("master: backend got %q", got)
	}
	auth("u4", "c4", `NO "Moved to mail.example.org."`)
	auth("u7", "c7", `NO "Login disabled for this user"`)
	auth("u5", "c5", `NO "Account is temporarily unavailable."`)
}
