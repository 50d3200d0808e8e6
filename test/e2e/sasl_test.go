package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// imaplibSCRAM logs in with imaplib's AUTHENTICATE and a SCRAM client (RFC 5802, no
// channel binding) written here: argv host port mechanism user password. It prints the
// server's tagged answer, and "SELECT <typ> <count>" after a successful login.
const imaplibSCRAM = `
import base64, hashlib, hmac, imaplib, os, sys
host, port, mech, user, password = sys.argv[1:6]
hname = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
def H(b): return hashlib.new(hname, b).digest()
def HMAC(k, b): return hmac.new(k, b, hname).digest()
nonce = base64.b64encode(os.urandom(18)).decode()
bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + ",r=" + nonce
state = {}
def client(challenge):
    if "first" not in state:
        state["first"] = True
        return ("n,," + bare).encode()
    if "final" not in state:
        state["final"] = True
        attrs = dict(kv.split("=", 1) for kv in challenge.decode().split(","))
        if not attrs["r"].startswith(nonce):
            raise SystemExit("server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(hname, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        ckey = HMAC(salted, b"Client Key")
        without = "c=biws,r=" + attrs["r"]
        auth = (bare + "," + challenge.decode() + "," + without).encode()
        proof = bytes(a ^ b for a, b in zip(ckey, HMAC(H(ckey), auth)))
        state["verifier"] = base64.b64encode(HMAC(HMAC(salted, b"Server Key"), auth)).decode()
        return (without + ",p=" + base64.b64encode(proof).decode()).encode()
    if challenge.decode() != "v=" + state["verifier"]:
        raise SystemExit("server signature wrong: %r" % challenge)
    state["verified"] = True
    return b""
m = imaplib.IMAP4(host, int(port), timeout=30)
try:
    typ, data = m.authenticate(mech, client)
except imaplib.IMAP4.error as e:
    print("NO", e)
    sys.exit(0)
print(typ, data[0].decode(), "verified" if state.get("verified") else "unverified")
typ, data = m.select("INBOX")
print("SELECT", typ, data[0].decode())
m.logout()
`

// scramLogin runs imaplibSCRAM against addr and returns what it printed.
func scramLogin(t *testing.T, addr, mech, user, pass string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	script := filepath.Join(t.TempDir(), "scram.py")
	os.WriteFile(script, []byte(imaplibSCRAM), 0o600)
	return run(t, "python3", script, host, port, mech, user, pass)
}

// curlOAuth2 runs curl --oauth2-bearer on url (imap://... or pop3://...) with mech (XOAUTH2
// or OAUTHBEARER, chosen with --login-options AUTH=...); it returns curl's output and
// whether curl succeeded.
func curlOAuth2(t *testing.T, url, mech, user, token string) (string, bool) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "30", "--url", url,
		"--login-options", "AUTH="+mech, "--user", user, "--oauth2-bearer", token).CombinedOutput()
	return string(out), err == nil
}

// TestSASLRelayIMAP logs in through usher with curl --oauth2-bearer (XOAUTH2 and
// OAUTHBEARER) and imaplib with SCRAM-SHA-256 and SCRAM-SHA-1 in front of backends that
// check the tokens against the test's introspection endpoint and the proofs against stored
// SCRAM hashes. Each user's messages are only on the backend usher's director hashing
// picks for it, so the mailbox a client sees shows where it landed.
func TestSASLRelayIMAP(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "python3")
	cl, in := testenv.StartSASLDovecot(t, testenv.Options{N: 2, Users: 20})
	// The setup itself, without usher: a failure below is usher's.
	b1 := cl.Backends()[0]
	if out, ok := curlOAuth2(t, "imap://"+b1.HostPort(b1.IMAPPort)+"/", "XOAUTH2", "user020", testenv.Token("user020")); !ok || !strings.Contains(out, "INBOX") {
		t.Fatalf("XOAUTH2 directly on %s: %v %q", b1.Name, ok, out)
	}
	if out := scramLogin(t, b1.HostPort(b1.IMAPPort), "SCRAM-SHA-256", "user010", "pass"); !strings.Contains(out, " verified") {
		t.Fatalf("SCRAM-SHA-256 directly on %s: %q", b1.Name, out)
	}
	u := startUsher(t, cl, usherOpts{extra: "auth_failure_delay = 0"})
	// usher learns the mechanisms from the backends (a probe at start).
	wantCaps := "AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-256 AUTH=XOAUTH2 AUTH=OAUTHBEARER"
	waitFor(t, "usher to offer the backends' mechanisms", func() bool {
		c := dialFrom(t, netip.Addr{}, u.Addr(u.IMAPPort))
		untagged, _ := c.cmd(t, "c", "CAPABILITY")
		return len(untagged) == 1 && strings.HasSuffix(untagged[0], wantCaps)
	})

	logins := []struct{ mech, user string }{
		{"XOAUTH2", "user001"}, {"XOAUTH2", "user002"}, {"OAUTHBEARER", "user003"}, {"OAUTHBEARER", "user004"},
		{"SCRAM-SHA-256", "user005"}, {"SCRAM-SHA-256", "user006"}, {"SCRAM-SHA-1", "user011"}, {"SCRAM-SHA-1", "user012"},
	}
	landed := map[string]bool{}
	want := map[string]string{} // user -> the backend its hash picks
	for i, l := range logins {
		b := backendOf(t, u, cl, l.user)
		landed[b.Name] = true
		want[l.user] = b.IP.String()
		if err := b.AddMessages(l.user, i+1, 300); err != nil {
			t.Fatal(err)
		}
		var out string
		if strings.HasPrefix(l.mech, "SCRAM") {
			out = scramLogin(t, u.Addr(u.IMAPPort), l.mech, l.user, "pass")
			if !strings.Contains(out, " verified") || !strings.Contains(out, fmt.Sprintf("SELECT OK %d", i+1)) {
				t.Errorf("%s %s through usher: %q", l.mech, l.user, out)
			}
			continue
		}
		out, ok := curlOAuth2(t, "imap://"+u.Addr(u.IMAPPort)+"/INBOX?ALL", l.mech, l.user, testenv.Token(l.user))
		if wantSearch := "* SEARCH" + searchAll(i+1); !ok || strings.TrimSpace(out) != wantSearch {
			t.Errorf("%s %s through usher: %v %q, want %q", l.mech, l.user, ok, out, wantSearch)
		}
	}
	if len(landed) != 2 {
		t.Errorf("the users landed on %v only; pick users on both backends", landed)
	}
	// curl over POP3 too: the same user, the same backend, the same messages.
	out, ok := curlOAuth2(t, "pop3://"+u.Addr(u.POP3Port)+"/", "XOAUTH2", "user002", testenv.Token("user002"))
	if !ok || out != "1 308\r\n2 308\r\n" { // user002's two messages, their lines counted with CRLF
		t.Errorf("POP3 XOAUTH2 through usher: %v %q", ok, out)
	}
	// Every user is recorded on the backend its hash picked (the one its mailbox is on).
	rows := u.mustAPI("directorMap", nil)
	for _, r := range rows {
		if user, _ := r["user"].(string); want[user] != r["mail server ip"] {
			t.Errorf("directorMap row %v, want %s", r, want[user])
		}
	}
	if len(rows) != len(logins) {
		t.Errorf("directorMap has %d users after %d logins: %v", len(rows), len(logins), rows)
	}

	// A wrong token: the backend's error challenge (RFC 7628 JSON) reaches the client, the
	// client's empty answer the backend, and its NO the client.
	asked := in.Asked()
	c := dialFrom(t, clientIP(u, 101), u.Addr(u.IMAPPort))
	ir := base64.StdEncoding.EncodeToString([]byte("user=user007\x01auth=Bearer " + testenv.Token("user008") + "\x01\x01"))
	fmt.Fprintf(c.c, "a AUTHENTICATE XOAUTH2 %s\r\n", ir)
	cont := c.line(t)
	js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(cont, "+ "))
	if err != nil || !strings.Contains(string(js), `"status":"401"`) {
		t.Fatalf("wrong token: continuation %q (%s)", cont, js)
	}
	fmt.Fprint(c.c, "\r\n")
	if tagged := c.line(t); tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Fatalf("wrong token: %q", tagged)
	}
	if in.Asked() == asked {
		t.Error("the backend did not ask the introspection endpoint")
	}
	// A wrong SCRAM password fails with the backend's answer.
	if out := scramLogin(t, u.Addr(u.IMAPPort), "SCRAM-SHA-256", "user007", "wrong"); !strings.HasPrefix(out, "NO") || !strings.Contains(out, "AUTHENTICATIONFAILED") {
		t.Errorf("wrong SCRAM password: %q", out)
	}
	// A client that cancels after the backend's server-first-message gets IMAP's answer.
	c = dialFrom(t, clientIP(u, 102), u.Addr(u.IMAPPort))
	first := base64.StdEncoding.EncodeToString([]byte("n,,n=user008,r=0123456789abcdef"))
	fmt.Fprintf(c.c, "b AUTHENTICATE SCRAM-SHA-256 %s\r\n", first)
	if cont := c.line(t); !strings.HasPrefix(cont, "+ ") {
		t.Fatalf("server-first: %q", cont)
	}
	fmt.Fprint(c.c, "*\r\n")
	if tagged := c.line(t); tagged != "b BAD Authentication aborted by client." {
		t.Fatalf("cancel: %q", tagged)
	}
	if _, tagged := c.cmd(t, "c", "NOOP"); tagged != "c OK NOOP completed." {
		t.Fatalf("after the cancel: %q", tagged)
	}
}

// searchAll is " 1 2 ... n".
func searchAll(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, " %d", i)
	}
	return b.String()
}
