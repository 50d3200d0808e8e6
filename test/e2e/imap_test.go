package e2e

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// backendOf asks usher which backend a user is (or would be) on.
func backendOf(t *testing.T, u *usher, cl *testenv.Cluster, user string) *testenv.Backend {
	t.Helper()
	rows := u.mustAPI("directorStatus", map[string]any{"user": user})
	ip := rows[0]["status"].(string)
	if ip == "n/a" {
		ip = rows[0]["hashed"].(string)
	}
	for _, b := range cl.Backends() {
		if b.IP.String() == ip {
			return b
		}
	}
	t.Fatalf("user %s maps to unknown backend %q", user, ip)
	return nil
}

func otherBackend(cl *testenv.Cluster, b *testenv.Backend) *testenv.Backend {
	for _, x := range cl.Backends() {
		if x != b {
			return x
		}
	}
	return nil
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(testenv.RequireEnv) == "1" {
			t.Fatalf("%s not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
}

func TestCurlListFetchThroughUsher(t *testing.T) {
	t.Parallel()
	requireTool(t, "curl")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user001")
	if err := b.AddMessages("user001", 3, 2000); err != nil {
		t.Fatal(err)
	}
	base := "imap://" + u.Addr(u.IMAPPort)
	out := run(t, "curl", "-sS", "--max-time", "30", "--url", base+"/", "--user", "user001:pass")
	if !strings.Contains(out, "INBOX") {
		t.Fatalf("LIST through usher: %q", out)
	}
	out = run(t, "curl", "-sS", "--max-time", "30", "--url", base+"/INBOX;UID=2", "--user", "user001:pass")
	if !strings.Contains(out, "Subject:") {
		t.Fatalf("FETCH through usher: %q", out)
	}
	t.Logf("curl fetched %d bytes of message 2 through usher from %s", len(out), b.Name)
	// The session is recorded and then gone.
	waitFor(t, "session to end", func() bool { return len(u.mustAPI("who", nil)) == 0 })
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mbsyncConfig syncs the INBOX of user at host:port into dir.
func mbsyncConfig(dir, host string, port int, user string) string {
	return fmt.Sprintf(`IMAPAccount far
Host %s
Port %d
User %s
Pass pass
SSLType None
AuthMechs LOGIN

IMAPStore far
Account far

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel ch
Far :far:
Near :near:
Patterns INBOX
Create Near
SyncState *
`, host, port, user, dir, dir)
}

var tuidLine = regexp.MustCompile(`(?m)^X-TUID: [^\n]*\n`)

// maildirDigest hashes the messages of a maildir, independent of file names.
func maildirDigest(t *testing.T, dir string) (int, string) {
	t.Helper()
	var sums []string
	for _, sub := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// mbsync stamps each message it stores with a random X-TUID
			// header of its own; everything else must be the backend's bytes.
			data = tuidLine.ReplaceAll(data, nil)
			sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(data)))
		}
	}
	sort.Strings(sums)
	return len(sums), fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(sums, ","))))
}

func mbsync(t *testing.T, host string, port int, user string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(rc, []byte(mbsyncConfig(filepath.Join(dir, "mail"), host, port, user)), 0o600)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	cmd := exec.Command("mbsync", "-c", rc, "ch")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mbsync via %s:%d: %v\n%s", host, port, err, out)
	}
	return maildirDigest(t, filepath.Join(dir, "mail", "INBOX"))
}

func TestMbsync200MessagesSameAsDirect(t *testing.T) {
	t.Parallel()
	requireTool(t, "mbsync")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user002")
	if err := b.AddMessages("user002", 200, 3000); err != nil {
		t.Fatal(err)
	}
	nVia, sumVia := mbsync(t, u.IP.String(), u.IMAPPort, "user002")
	nDirect, sumDirect := mbsync(t, b.IP.String(), b.IMAPPort, "user002")
	if nVia != 200 || nDirect != 200 || sumVia != sumDirect {
		t.Fatalf("through usher %d messages (%s), direct %d (%s)", nVia, sumVia, nDirect, sumDirect)
	}
	t.Logf("mbsync: 200 messages, identical through usher and direct (%s)", sumVia[:16])
}

const imaplibSTARTTLS = `
import imaplib, ssl, sys
host, port, ca, user = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4(host, port)
assert 'STARTTLS' in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
typ, _ = m.login(user, 'pass')
assert typ == 'OK'
typ, data = m.select('INBOX')
print('SELECT', typ, data[0].decode())
m.logout()
`

func TestImaplibSTARTTLS(t *testing.T) {
	t.Parallel()
	requireTool(t, "python3")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user003")
	b.AddMessages("user003", 4, 500)
	script := filepath.Join(t.TempDir(), "starttls.py")
	os.WriteFile(script, []byte(imaplibSTARTTLS), 0o600)
	out := run(t, "python3", script, u.IP.String(), fmt.Sprint(u.IMAPPort), filepath.Join(u.Dir, "cert.pem"), "user003")
	if !strings.Contains(out, "SELECT OK 4") {
		t.Fatalf("imaplib STARTTLS: %q", out)
	}
}

// rawIMAP is a minimal line-level IMAP client for tests that need to pick
// the client's source address or read untagged BYEs.
type rawIMAP struct{ lineConn }

// lineConn is a client connection read a line at a time, each within a minute.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
}

func newLineConn(c net.Conn) lineConn { return lineConn{c: c, r: bufio.NewReader(c)} }

// line returns the next line without its line end, or "EOF: <error>".
func (l *lineConn) line(t *testing.T) string {
	t.Helper()
	l.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	s, err := l.r.ReadString('\n')
	if err != nil {
		return "EOF: " + err.Error()
	}
	return strings.TrimRight(s, "\r\n")
}

func dialFrom(t *testing.T, src netip.Addr, addr string) *rawIMAP {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawIMAP{newLineConn(c)}
	if l := r.line(t); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting %q", l)
	}
	return r
}

// loginIMAP dials addr from src (any when invalid) and logs user in with the cluster's
// password; anything but OK fails the test.
func loginIMAP(t *testing.T, src netip.Addr, addr, user string) *rawIMAP {
	t.Helper()
	c := dialFrom(t, src, addr)
	if _, tagged := c.cmd(t, "a", "LOGIN "+user+" pass"); !strings.HasPrefix(tagged, "a OK") {
		t.Fatalf("login %s: %q", user, tagged)
	}
	return c
}

// cmd sends a tagged command and returns the untagged lines and the tagged reply.
func (r *rawIMAP) cmd(t *testing.T, tag, text string) ([]string, string) {
	t.Helper()
	fmt.Fprintf(r.c, "%s %s\r\n", tag, text)
	var untagged []string
	for {
		l := r.line(t)
		if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "EOF") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}
