package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// anchorDirector writes the shared anchor's Dovecot director configuration (full mode's
// director/dovecot.conf and its per-service passdb files director/users.%s, which answer
// proxy=y port=<backend port>) for a director at u's address in front of cl, by running
// setup.sh's own generator functions, and the userdb file setup.sh writes beside them. Only
// listen and state_dir are then set for this test: the rest is the anchor's text. It returns
// the configuration's path.
func anchorDirector(t *testing.T, u *usher, cl *testenv.Cluster) string {
	t.Helper()
	setup := filepath.Join(testenv.SharedDir(t, filepath.Join("anchor", "setup.sh")), "anchor", "setup.sh")
	src, err := os.ReadFile(setup)
	if err != nil {
		t.Fatal(err)
	}
	// director_users() and the config generators (common_conf .. director_conf) verbatim.
	gen := regexp.MustCompile(`(?ms)^director_users\(\) \{.*?^\}\n`).Find(src)
	confs := regexp.MustCompile(`(?ms)^common_conf\(\) \{.*?^director_conf\(\) \{.*?^EOF\n\}\n`).Find(src)
	if gen == nil || confs == nil {
		t.Fatalf("%s: director_users/common_conf/director_conf not found", setup)
	}
	a := filepath.Join(u.Dir, "anchor")
	for _, d := range []string{"director/run", "director/state", "director/log", "mail"} {
		if err := os.MkdirAll(filepath.Join(a, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bs, p := cl.Backends(), cl.Ports()
	script := string(gen) + string(confs) + `
director_conf > "$A/director/dovecot.conf"
for svc in imap:$ANCHOR_IMAP_PORT pop3:$ANCHOR_POP3_PORT lmtp:$ANCHOR_LMTP_PORT \
           sieve:$ANCHOR_SIEVE_PORT doveadm:$ANCHOR_DOVEADM_PORT; do
  director_users "${svc##*:}" > "$A/director/users.${svc%%:*}"
done
`
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "A="+a, "NUSERS="+strconv.Itoa(len(cl.Users())),
		"ANCHOR_DIRECTOR_IP="+u.IP.String(), "ANCHOR_B1_IP="+bs[0].IP.String(), "ANCHOR_B2_IP="+bs[1].IP.String(),
		fmt.Sprintf("ANCHOR_IMAP_PORT=%d", p.IMAP), fmt.Sprintf("ANCHOR_POP3_PORT=%d", p.POP3),
		fmt.Sprintf("ANCHOR_LMTP_PORT=%d", p.LMTP), fmt.Sprintf("ANCHOR_SIEVE_PORT=%d", p.Sieve),
		fmt.Sprintf("ANCHOR_HTTP_PORT=%d", u.APIPort), fmt.Sprintf("ANCHOR_DOVEADM_PORT=%d", p.Doveadm),
		fmt.Sprintf("ANCHOR_RING_PORT=%d", testenv.FreePort(t, u.IP)),
		"ANCHOR_PASSWORD=hellodoveadm", "ANCHOR_API_KEY=key", "ANCHOR_MAIL_UID=21000", "ANCHOR_MAIL_GID=21000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("anchor's generators: %v\n%s", err, out)
	}
	var users strings.Builder
	for _, name := range cl.Users() {
		fmt.Fprintf(&users, "%s:{PLAIN}pass:21000:21000::%s/mail/%s::\n", name, a, name)
	}
	if err := os.WriteFile(filepath.Join(a, "users"), []byte(users.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a, "director", "dovecot.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	set := func(conf []byte, key, value string) []byte {
		re := regexp.MustCompile(`(?m)^` + key + ` = .*$`)
		if !re.Match(conf) {
			t.Fatalf("the anchor's director config has no %s", key)
		}
		return re.ReplaceAll(conf, []byte(key+" = "+value))
	}
	conf = set(conf, "listen", u.IP.String())
	conf = set(conf, "state_dir", filepath.Join(u.Dir, "state"))
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAnchorDirectorConfig starts usher on the anchor's real Dovecot director configuration
// (its passdb answers proxy=y port=<the backends' port>, and usher's own backend_*_port
// settings are left at their defaults, where nothing listens), and logs in over IMAP, POP3,
// ManageSieve and LMTP: each lands on the user's backend, on the passdb's port. The health
// checks (on by default) probe that port too: after fall+1 rounds no backend is down.
func TestAnchorDirectorConfig(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	p := cl.Ports()
	ip := cl.Backends()[0].IP.As4()
	ip[3] = 10
	// anchorDirector reads u.IP: the address comes first, the process once the config exists
	u := &usher{t: t, Dir: t.TempDir(), Usher: &testenv.Usher{IP: netip.AddrFrom4(ip)}}
	// the anchor's director listens on the backends' ports, on its own address
	u.IMAPPort, u.POP3Port, u.LMTPPort, u.Sieve = p.IMAP, p.POP3, p.LMTP, p.Sieve
	u.APIPort = testenv.FreePort(t, u.IP)
	u.Metrics = testenv.FreePort(t, u.IP)
	conf := anchorDirector(t, u, cl)
	// usher's own settings, not the anchor's: checks every 500 ms (default fall 3) so that
	// the checker's verdicts are in before the logins, and a metrics listener to see them.
	addConf(t, conf, fmt.Sprintf("usher_health_check_interval = 500 msecs\n"+
		"service usher {\n  inet_listener metrics {\n    address = %s\n    port = %d\n  }\n}\n", u.IP, u.Metrics))
	u.Usher = testenv.NewUsher(t, u.IP, usherBin, conf)
	u.start()
	// The health checks probe where the passdb sends logins (port=), not usher's default
	// backend_imap_port where nothing listens: after fall+1 rounds both backends are up,
	// and the logins below are all new users'.
	waitHealthRounds(t, u, cl, 4)
	for _, h := range u.mustAPI("directorStatus", nil) {
		if h["state"] == "down" {
			t.Fatalf("the health checks put backend %v down: %v", h["mail server ip"], h)
		}
	}
	if log := u.Log.String(); !strings.Contains(log, fmt.Sprintf(`msg="health checks probe the passdb's port" check=imap port=%d`, p.IMAP)) ||
		strings.Contains(log, "health check never passed") {
		t.Fatalf("the health checks do not probe the passdb's port %d", p.IMAP)
	}
	users, where := usersOnBothBackends(t, u, cl, 4)
	for _, user := range users[:3] {
		if err := where[user].AddMessages(user, 1, 200); err != nil {
			t.Fatal(err)
		}
	}

	// IMAP: the message exists only on the user's backend.
	c := dialFrom(t, clientIP(u, 31), u.Addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN "+users[0]+" pass"); !strings.HasPrefix(tagged, "a OK") {
		t.Fatalf("IMAP login %s: %q", users[0], tagged)
	}
	if untagged, tagged := c.cmd(t, "b", "SELECT INBOX"); !strings.HasPrefix(tagged, "b OK") || !containsLine(untagged, "* 1 EXISTS") {
		t.Errorf("IMAP %s on %s: %q %q", users[0], where[users[0]].Name, untagged, tagged)
	}

	// POP3
	pc := dialPOP3(t, clientIP(u, 32), u.Addr(u.POP3Port))
	if r := pc.cmd(t, "USER "+users[1]); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("POP3 USER: %q", r)
	}
	if r := pc.cmd(t, "PASS pass"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("POP3 login %s: %q", users[1], r)
	}
	if r := pc.cmd(t, "STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("POP3 %s on %s: STAT %q", users[1], where[users[1]].Name, r)
	}

	// ManageSieve: a script put through usher is on the user's backend.
	sieveUser := users[2]
	sc := dialSieve(t, u.Addr(u.Sieve))
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + sieveUser + "\x00pass"))
	if r := sc.cmd(t, `AUTHENTICATE "PLAIN" "`+ir+`"`); !strings.HasPrefix(r, "OK") {
		t.Fatalf("ManageSieve login %s: %q", sieveUser, r)
	}
	script := "keep;\r\n"
	if r := sc.cmd(t, fmt.Sprintf("PUTSCRIPT \"anchor\" {%d+}\r\n%s", len(script), script)); !strings.HasPrefix(r, "OK") {
		t.Fatalf("PUTSCRIPT: %q", r)
	}
	if _, err := os.Stat(filepath.Join(where[sieveUser].MailRoot, sieveUser, "sieve", "anchor.sieve")); err != nil {
		t.Errorf("ManageSieve %s: script not on %s: %v", sieveUser, where[sieveUser].Name, err)
	}

	// LMTP: a delivery through usher reaches the recipient's backend only.
	lmtpUser := users[3]
	lc, err := net.DialTimeout("tcp", u.Addr(u.LMTPPort), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	l := &lmtpConn{t: t, c: lc, r: bufio.NewReader(lc)}
	l.expect("220")
	l.send("LHLO e2e")
	l.expect("250")
	l.send("MAIL FROM:<sender@anchor.test>")
	l.expect("250")
	l.send("RCPT TO:<" + lmtpUser + "@anchor.test>")
	l.expect("250")
	l.send("DATA")
	l.expect("354")
	l.send("Subject: anchor", "", "through the anchor's director config", ".")
	l.expect("250")
	checkDeliveredOnce(t, cl, []string{lmtpUser}, where)
}

// addConf appends text to the configuration file at path.
func addConf(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text); err != nil {
		t.Fatal(err)
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// sieveConn is a line-level ManageSieve client.
type sieveConn struct{ lineConn }

// dialSieve connects and reads the greeting up to its OK.
func dialSieve(t *testing.T, addr string) *sieveConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &sieveConn{newLineConn(c)}
	for l := s.line(t); !strings.HasPrefix(l, "OK"); l = s.line(t) {
		if strings.HasPrefix(l, "EOF") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			t.Fatalf("ManageSieve greeting: %q", l)
		}
	}
	return s
}

// cmd sends a command and returns its final OK/NO/BYE line.
func (s *sieveConn) cmd(t *testing.T, text string) string {
	t.Helper()
	fmt.Fprintf(s.c, "%s\r\n", text)
	for {
		l := s.line(t)
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") || strings.HasPrefix(l, "EOF") {
			return l
		}
	}
}
