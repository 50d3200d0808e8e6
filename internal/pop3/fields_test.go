package pop3

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// The passdb's reply fields decide the backend login as Dovecot's POP3 proxy makes it:
// destuser and pass on USER/PASS, master= with AUTH PLAIN for the user, proxy_not_trusted
// without XCLIENT, nologin refused with the reason, a reply without proxy refused.
func TestPassdbFields(t *testing.T) {
	pdb := &logintest.Passdb{Users: map[string]string{"u1": "c1", "u2": "c2", "u3": "pass", "u4": "c4", "u5": "c5", "u7": "c7", "u8": "c8"}}
	pdb.SetFields("u1", "proxy", "destuser=real1", "pass=pass")
	pdb.SetFields("u2", "proxy", "master=admin", "pass=pass")
	pdb.SetFields("u3", "proxy", "proxy_not_trusted")
	pdb.SetFields("u4", "nologin", "reason=Moved to mail.example.org.")
	pdb.SetFields("u5")
	pdb.SetFields("u7", "nologin")
	pdb.SetFields("u8", "nologin", "reason=[SYS/PERM] Moved.")
	h := newHarness(t, Config{}, func(env *login.Env) { env.Passdb = pdb })
	login := func(user, pass, want string) {
		t.Helper()
		c := h.Dial()
		c.Expect(greeting)
		c.Send("USER " + user)
		c.ExpectPrefix("+OK")
		c.Send("PASS " + pass)
		c.ExpectPrefix(want)
	}
	login("u1", "c1", "+OK")
	if got := h.Backend.Received(); !slices.Contains(got, "USER real1") || !slices.Contains(got, "PASS pass") {
		t.Errorf("destuser/pass: backend got %q", got)
	}
	login("u2", "c2", "+OK")
	ir := base64.StdEncoding.EncodeToString([]byte("u2\x00admin\x00pass"))
	if got := h.Backend.Received(); !slices.Contains(got, "AUTH PLAIN "+ir) {
		t.Errorf("master: backend got %q", got)
	}
	xclients := func() int {
		n := 0
		for _, l := range h.Backend.Received() {
			if strings.HasPrefix(l, "XCLIENT ") {
				n++
			}
		}
		return n
	}
	before := xclients()
	login("u3", "pass", "+OK")
	if xclients() != before {
		t.Errorf("proxy_not_trusted: the backend got XCLIENT: %q", h.Backend.Received())
	}
	login("u4", "c4", "-ERR [AUTH] Moved to mail.example.org.")
	login("u7", "c7", "-ERR [AUTH] Login disabled for this user")
	login("u8", "c8", "-ERR [SYS/PERM] Moved.")
	login("u5", "c5", "-ERR Account is temporarily unavailable.")
}
