package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// introspection is a loopback OAuth2 token introspection endpoint (RFC 7662, form POST of
// "token"), the one the backends' oauth2 passdb asks: "tok-<user>" is an active token of
// <user>, anything else is inactive. It counts the questions so a test can see that the
// backend, not usher, checked the token.
type introspection struct {
	url string
	mu  sync.Mutex
	n   int
}

func startIntrospection(t *testing.T, ip string) *introspection {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	in := &introspection{url: "http://" + ln.Addr().String() + "/introspect"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		in.n++
		in.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		user, ok := strings.CutPrefix(r.FormValue("token"), "tok-")
		if !ok || user == "" || strings.ContainsAny(user, `"\`) {
			fmt.Fprint(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"username":%q}`, user)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return in
}

func (in *introspection) asked() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.n
}

// startSASLBackends starts n Dovecot backends that offer XOAUTH2 and OAUTHBEARER (an oauth2
// passdb asking in) and SCRAM-SHA-1 and SCRAM-SHA-256: the password "pass" of user001 to
// user010 is stored as a SCRAM-SHA-256 hash, of user011 to user020 as a SCRAM-SHA-1 one (a
// SCRAM hash serves only its own mechanism, and PLAIN).
func startSASLBackends(t *testing.T, n int) (*testenv.Cluster, *introspection) {
	t.Helper()
	testenv.RequireDovecot(t)
	in := startIntrospection(t, "127.0.0.1")
	dir, err := os.MkdirTemp("/tmp", "usher-oauth2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "oauth2.conf.ext")
	ext := "introspection_mode = post\nintrospection_url = " + in.url +
		"\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
	if err := os.WriteFile(conf, []byte(ext), 0o644); err != nil {
		t.Fatal(err)
	}
	hash := map[string]string{}
	for _, s := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
		out, err := exec.Command("doveadm", "pw", "-s", s, "-p", "pass").Output()
		if err != nil {
			t.Fatalf("doveadm pw -s %s: %v", s, err)
		}
		hash[s] = strings.TrimSpace(string(out))
	}
	stored := func(user string) string {
		if user <= testenv.UserName(10) {
			return hash["SCRAM-SHA-256"]
		}
		return hash["SCRAM-SHA-1"]
	}
	cl := testenv.StartDovecot(t, testenv.Options{N: n, Users: 20, StoredPassword: stored,
		Config: "auth_mechanisms = plain login scram-sha-1 scram-sha-256 xoauth2 oauthbearer\n" +
			"passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = " + conf + "\n}\n"})
	return cl, in
}

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

// curlOAuth2 lists user's mailboxes with curl --oauth2-bearer over IMAP with mech
// (XOAUTH2 or OAUTHBEARER, chosen with --login-options AUTH=...); it returns curl's
// output and whether curl succeeded.
func curlOAuth2(t *testing.T, addr, mech, user, token string) (string, bool) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "30", "--url", "imap://"+addr+"/",
		"--login-options", "AUTH="+mech, "--user", user, "--oauth2-bearer", token).CombinedOutput()
	return string(out), err == nil
}

// TestSASLBackendsDirect checks the test's own setup without usher: the backends take the
// tokens and the SCRAM proofs, and refuse wrong ones, so a failure through usher is usher's.
func TestSASLBackendsDirect(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	requireTool(t, "python3")
	cl, in := startSASLBackends(t, 1)
	b := cl.Backends()[0]
	addr := b.HostPort(b.IMAPPort)
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		if out, ok := curlOAuth2(t, addr, mech, "user001", "tok-user001"); !ok || !strings.Contains(out, "INBOX") {
			t.Errorf("%s with a good token: %v %q", mech, ok, out)
		}
		if out, ok := curlOAuth2(t, addr, mech, "user001", "tok-user002"); ok {
			t.Errorf("%s with user002's token: %q", mech, out)
		}
	}
	if in.asked() < 4 {
		t.Errorf("introspection asked %d times", in.asked())
	}
	for _, c := range []struct{ mech, user string }{{"SCRAM-SHA-256", "user001"}, {"SCRAM-SHA-1", "user011"}} {
		if out := scramLogin(t, addr, c.mech, c.user, "pass"); !strings.Contains(out, "OK") || !strings.Contains(out, " verified") {
			t.Errorf("%s %s: %q", c.mech, c.user, out)
		}
		if out := scramLogin(t, addr, c.mech, c.user, "wrong"); !strings.HasPrefix(out, "NO") {
			t.Errorf("%s %s with a wrong password: %q", c.mech, c.user, out)
		}
	}
}
