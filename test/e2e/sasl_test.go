package e2e

import (
	"net"
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
	cl, in := testenv.StartSASLDovecot(t, testenv.Options{N: 1, Users: 20})
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
	if in.Asked() < 4 {
		t.Errorf("introspection asked %d times", in.Asked())
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
