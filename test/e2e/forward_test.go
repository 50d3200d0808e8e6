package e2e

import (
	"bufio"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// backendDebug makes a backend log what arrives from the proxy: every ID parameter
// (imap_id_log) and the auth requests with their forward fields (auth_debug).
const backendDebug = `
imap_id_log = *
auth_debug = yes
`

// TestForwardFieldsReachBackend logs in through usher over IMAP, POP3 and LMTP for a user
// whose passdb entry carries forward_* fields, with imap_id_retain on: the backend's log shows
// the client's own ID parameters and the forward fields arriving, as from a Dovecot proxy.
func TestForwardFieldsReachBackend(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 3})
	b := cl.Backends()[0]
	if err := b.AddConfig(backendDebug); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("user001:{PLAIN}pass::::::proxy=y forward_tenant=acme forward_plan=gold\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUsher(t, cl, usherOpts{extra: "auth_username_format = %Ln\nimap_id_retain = yes\npassdb {\n  driver = passwd-file\n  args = " + users + "\n}\n"})

	c := dialFrom(t, clientIP(u, 61), u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", `ID ("name" "e2e-client" "version" "1.2" "x-originating-ip" "192.0.2.66")`); !strings.HasPrefix(tagged, "a OK") {
		t.Fatalf("ID: %q", tagged)
	}
	if _, tagged := c.cmd(t, "b", "LOGIN user001 pass"); !strings.HasPrefix(tagged, "b OK") {
		t.Fatalf("IMAP login: %q", tagged)
	}
	p := dialPOP3(t, clientIP(u, 62), u.Addr(u.POP3Port))
	if r := p.cmd(t, "USER user001"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("USER: %q", r)
	}
	if r := p.cmd(t, "PASS pass"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("POP3 login: %q", r)
	}
	lc, err := net.Dial("tcp", u.Addr(u.LMTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	l := &lmtpConn{t: t, c: lc, r: bufio.NewReader(lc)}
	l.expect("220 ")
	for _, step := range [][2]string{{"LHLO e2e", "250"}, {"MAIL FROM:<a@b.test>", "250"},
		{"RCPT TO:<user001@anchor.test>", "250"}, {"DATA", "354"}, {"Subject: forward\r\n\r\nx\r\n.", "250"}} {
		l.send(step[0])
		l.expect(step[1])
	}

	var log string
	waitFor(t, "the backend logging all three logins", func() bool {
		data, _ := os.ReadFile(b.LogPath)
		log = string(data)
		return strings.Contains(log, "imap-login: Info: Login: user=<user001>") &&
			strings.Contains(log, "pop3-login: Info: Login: user=<user001>") &&
			strings.Contains(log, "lmtp(user001)")
	})
	// IMAP: the client's own ID parameters and the forward fields in the proxy's ID
	if !strings.Contains(log, "ID sent: name=e2e-client, version=1.2, x-session-id=") ||
		!strings.Contains(log, "x-forward-tenant=acme, x-forward-plan=gold") {
		t.Errorf("backend log lacks the client's ID parameters and the x-forward-* fields")
	}
	// what the backend's auth got: the fields tab-joined (tab-escaped in its log) for IMAP and
	// POP3 (XCLIENT FORWARD=), and as the XRCPTFORWARD= parameter's base64 for LMTP
	escaped := "forward_fields=tenant=acme\x01tplan=gold"
	for _, want := range []string{"service=imap\t", "service=pop3\t", "service=lmtp\t"} {
		fwd := escaped
		if want == "service=lmtp\t" {
			fwd = "forward_fields=" + base64.StdEncoding.EncodeToString([]byte("tenant=acme\tplan=gold"))
		}
		if !logLineHas(log, want, fwd) {
			t.Errorf("backend log has no auth request with %q and %q", want, fwd)
		}
	}
	// the client's own x-originating-ip is not the proxy's to pass on
	if strings.Contains(log, "192.0.2.66") {
		t.Errorf("the client's x-originating-ip reached the backend")
	}
	if t.Failed() {
		t.Logf("backend log:\n%s", log)
	}
}

// logLineHas reports whether one line of log contains all of parts.
func logLineHas(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}
