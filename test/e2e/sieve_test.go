package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// sieveConnect runs sieve-connect against usher's ManageSieve listener as user, with the
// password on a pipe (its --passwordfd) and usher's certificate as the only trusted CA, so
// the STARTTLS it insists on is verified.
func sieveConnect(t *testing.T, u *usher, user string, args ...string) string {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(pw, "pass")
	pw.Close()
	defer pr.Close()
	full := append([]string{"--server", u.IP.String(), "--port", fmt.Sprint(u.Sieve), "--user", user,
		"--passwordfd", "3", "--tlscafile", filepath.Join(u.Dir, "cert.pem"), "--noclearchan", "--authmech", "PLAIN"}, args...)
	cmd := exec.Command("sieve-connect", full...)
	cmd.ExtraFiles = []*os.File{pr}
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sieve-connect %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestSieveConnectUploadActivateThroughUsher(t *testing.T) {
	t.Parallel()
	requireTool(t, "sieve-connect")
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	script := filepath.Join(t.TempDir(), "vacation.sieve")
	os.WriteFile(script, []byte("require \"fileinto\";\nif header :contains \"subject\" \"usher\" { fileinto \"INBOX\"; }\nkeep;\n"), 0o600)

	sieveConnect(t, u, "user004", "--localsieve", script, "--remotesieve", "usher-test", "--upload")
	sieveConnect(t, u, "user004", "--remotesieve", "usher-test", "--activate")
	list := sieveConnect(t, u, "user004", "--list")
	if !strings.Contains(list, "usher-test") {
		t.Fatalf("--list through usher: %q", list)
	}

	// The script lives on the backend the director chose, and only there.
	b := backendOf(t, u, cl, "user004")
	home := filepath.Join(b.MailRoot, "user004")
	data, err := os.ReadFile(filepath.Join(home, "sieve", "usher-test.sieve"))
	if err != nil || !strings.Contains(string(data), "fileinto") {
		t.Fatalf("script on %s: %v %q", b.Name, err, data)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || !strings.HasSuffix(target, "usher-test.sieve") {
		t.Fatalf("active script link on %s: %q %v", b.Name, target, err)
	}
	other := otherBackend(cl, b)
	if _, err := os.Stat(filepath.Join(other.MailRoot, "user004", "sieve", "usher-test.sieve")); err == nil {
		t.Fatalf("script also on %s", other.Name)
	}
	waitFor(t, "sieve sessions to end", func() bool { return len(u.mustAPI("who", nil)) == 0 })
}

// A raw ManageSieve session: the pre-login texts, a wrong password, the login, who, and a
// kick that ends it with a BYE.
func TestSieveRawSessionWhoAndKick(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	src := clientIP(u, 80)
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", u.Addr(u.Sieve))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			return "EOF: " + err.Error()
		}
		return strings.TrimRight(l, "\r\n")
	}
	var greeting []string
	for {
		l := line()
		greeting = append(greeting, l)
		if !strings.HasPrefix(l, `"`) {
			break
		}
	}
	want := []string{`"IMPLEMENTATION" "Dovecot Pigeonhole"`, `"NOTIFY" "mailto"`, `"SASL" "PLAIN LOGIN"`, `"STARTTLS"`, `"VERSION" "1.0"`, `OK "Dovecot ready."`}
	for _, w := range want {
		if !strings.Contains(strings.Join(greeting, "\n"), w) {
			t.Fatalf("greeting %q lacks %q", greeting, w)
		}
	}
	auth := func(user, pass string) string {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		fmt.Fprintf(c, "AUTHENTICATE \"PLAIN\" \"%s\"\r\n", ir)
		return line()
	}
	if got := auth("user009", "wrong"); got != `NO "Authentication failed."` {
		t.Fatalf("wrong password: %q", got)
	}
	if got := auth("user009", "pass"); got != `OK "Logged in."` {
		t.Fatalf("login: %q", got)
	}
	fmt.Fprintf(c, "LISTSCRIPTS\r\n")
	if got := line(); !strings.HasPrefix(got, "OK") {
		t.Fatalf("LISTSCRIPTS: %q", got)
	}
	who := u.mustAPI("who", nil)
	if len(who) != 1 || who[0]["username"] != "user009" || who[0]["service"] != "sieve" || who[0]["ips"] != "("+src.String()+")" {
		t.Fatalf("usher who = %v", who)
	}
	u.mustAPI("kick", map[string]any{"mask": []string{"user009"}})
	if l := line(); !strings.HasPrefix(l, "BYE ") {
		t.Fatalf("after kick: %q", l)
	}
	if l := line(); !strings.HasPrefix(l, "EOF") {
		t.Fatalf("still connected: %q", l)
	}
}
