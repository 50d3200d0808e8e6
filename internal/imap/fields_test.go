package imap

import (
	"encoding/base64"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// The passdb's reply fields decide the backend login as Dovecot's IMAP proxy makes it:
// destuser and pass replace the client's name and password, master= logs in with
// AUTHENTICATE PLAIN for the user, proxy_not_trusted sends no ID, nologin refuses with the
// reason, a reply without proxy is refused as a configuration error, and port= wins over
// usher's backend port (here a dead one) while host= bypasses the director.
func TestPassdbFields(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pdb := &logintest.Passdb{Users: map[string]string{
		"u1": "c1", "u2": "c2", "u3": "pass", "u4": "c4", "u5": "c5", "u6": "pass", "u7": "c7", "u8": "c8",
	}}
	h := newHarness(t, Config{Config: login.Config{BackendPort: dead}}, func(env *login.Env) { env.Passdb = pdb })
	port := "port=" + strconv.Itoa(h.Backend.Port())
	pdb.SetFields("u1", "proxy", port, "destuser=real1", "pass=pass")
	pdb.SetFields("u2", "proxy", port, "master=admin", "pass=pass")
	pdb.SetFields("u3", "proxy", port, "proxy_not_trusted", "proxy_nopipelining")
	pdb.SetFields("u4", "nologin", "reason=Moved to mail.example.org.")
	pdb.SetFields("u5", port)
	pdb.SetFields("u7", "nologin")
	pdb.SetFields("u8", "nologin", "reason=[ALERT] Moved.")
	pdb.SetFields("u6", "proxy", port, "host=127.0.0.1")
	c := h.Dial()
	c.Expect(greeting)

	c.Send("a LOGIN u1 c1")
	c.ExpectPrefix("a OK ")
	if got := h.Backend.Received(); !slices.Contains(got, `L LOGIN "real1" "pass"`) {
		t.Errorf("destuser/pass: backend got %q", got)
	}

	c = h.Dial()
	c.Expect(greeting)
	c.Send("b LOGIN u2 c2")
	c.ExpectPrefix("b OK ")
	ir := base64.StdEncoding.EncodeToString([]byte("u2\x00admin\x00pass"))
	if got := h.Backend.Received(); !slices.Contains(got, "L AUTHENTICATE PLAIN "+ir) {
		t.Errorf("master: backend got %q", got)
	}

	ids := func() int {
		n := 0
		for _, l := range h.Backend.Received() {
			if strings.HasPrefix(l, "I ID ") {
				n++
			}
		}
		return n
	}
	before := ids()
	c = h.Dial()
	c.Expect(greeting)
	c.Send("c LOGIN u3 pass")
	c.ExpectPrefix("c OK ")
	if ids() != before {
		t.Errorf("proxy_not_trusted: the backend got an ID: %q", h.Backend.Received())
	}

	c = h.Dial()
	c.Expect(greeting)
	c.Send("d LOGIN u4 c4")
	c.Expect("d NO [CONTACTADMIN] Moved to mail.example.org.")
	c.Send("d2 LOGIN u7 c7")
	c.Expect("d2 NO [CONTACTADMIN] Login disabled for this user")
	c.Send("d3 LOGIN u8 c8")
	c.Expect("d3 NO [CONTACTADMIN] [ALERT] Moved.")
	c.Send("e LOGIN u5 c5")
	c.Expect("e NO [SERVERBUG] Account is temporarily unavailable.")
	if ev := h.Pen.Events(); slices.ContainsFunc(ev, func(e logintest.PenaltyEvent) bool { return e.Kind == "fail" }) {
		t.Errorf("nologin and a reply without proxy are no wrong passwords: %+v", ev)
	}

	routed := len(h.Router.Calls())
	c.Send("f LOGIN u6 pass")
	c.ExpectPrefix("f OK ")
	if got := h.Router.Calls(); len(got) != routed {
		t.Errorf("host= asked the director: %q", got)
	}
}

// proxy_timeout replaces login_proxy_timeout for the login: a backend that never greets
// fails the login after the passdb's second, long before usher's own (here two minutes,
// beyond the client's 30 s deadline).
func TestPassdbProxyTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	pdb := &logintest.Passdb{Users: map[string]string{"u1": "pass"}}
	pdb.SetFields("u1", "proxy", "port="+strconv.Itoa(silent.Addr().(*net.TCPAddr).Port), "proxy_timeout=1")
	h := newHarness(t, Config{}, func(env *login.Env) {
		env.Passdb = pdb
		env.ProxyTimeout = 2 * time.Minute
	})
	c := h.Dial()
	c.Expect(greeting)
	c.Send("a LOGIN u1 pass")
	c.Expect("a NO [UNAVAILABLE] Account is temporarily unavailable.")
}
