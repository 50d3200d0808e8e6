// Package migrate tests `usher import` against the real thing: a Dovecot
// 2.3.19 director (../shared/anchor in full mode) with users logged in and
// some moved away from their ring position, carried over into a running usher.
package migrate

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/dirimport"
	"github.com/usher-mail/usher/internal/testenv"
)

const (
	nUsers   = 500
	nMoved   = 20
	imapPort = 21143 // the anchor's default ports, on addresses of this test's own
	httpPort = 21080
	password = "hellodoveadm"
	// batch is how many sessions are open at once: Dovecot's login processes
	// (default_process_limit 100) each hold one proxied session.
	batch = 90
)

var usherBin string

func TestMain(m *testing.M) { os.Exit(testenv.MainWithUsher(m, &usherBin, true)) }

// anchor is a running ../shared/anchor deployment in full mode.
type anchor struct {
	dir              string
	env              []string
	director, b1, b2 netip.Addr
}

func (a *anchor) adminSocket() string {
	return filepath.Join(a.dir, "director", "run", "director-admin")
}

func (a *anchor) backends() []*testenv.Backend {
	var out []*testenv.Backend
	for i, ip := range []netip.Addr{a.b1, a.b2} {
		out = append(out, &testenv.Backend{Name: "b" + strconv.Itoa(i+1), IP: ip, HTTPPort: httpPort, DoveadmPassword: password})
	}
	return out
}

// stopAll sends SIGTERM to the three Dovecot masters at once and waits for
// them (teardown.sh stops them one after the other, about 3 s each); only
// pids this anchor's setup.sh recorded, and only while they run its config.
func (a *anchor) stopAll() {
	var pids []int
	for _, name := range []string{"director", "b1", "b2"} {
		data, err := os.ReadFile(filepath.Join(a.dir, name, "run", "master.pid"))
		pid, err2 := strconv.Atoi(strings.TrimSpace(string(data)))
		cmdline, err3 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		conf := filepath.Join(a.dir, name, "dovecot.conf")
		if err != nil || err2 != nil || err3 != nil || !strings.Contains(string(cmdline), conf) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGTERM) == nil {
			pids = append(pids, pid)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		alive := 0
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				alive++
			}
		}
		if alive == 0 {
			return
		}
	}
}

// startAnchor runs setup.sh on a random 127.X.Y.0/24 of its own, so it
// cannot meet another test's anchor, and tears it down at the end.
func startAnchor(t *testing.T) *anchor {
	shared := testenv.SharedDir(t, filepath.Join("anchor", "setup.sh"))
	setup := filepath.Join(shared, "anchor", "setup.sh")
	testenv.RequireDovecot(t)
	if os.Getuid() != 0 {
		if os.Getenv(testenv.RequireEnv) == "1" {
			t.Fatal("the anchor needs root (Dovecot switches to the mail uid)")
		}
		t.Skip("the anchor needs root (Dovecot switches to the mail uid)")
	}
	x, y := byte(100+rand.IntN(100)), byte(rand.IntN(250))
	ip := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{127, x, y, last}) }
	dir, err := os.MkdirTemp("", "usher-migrate-")
	if err != nil {
		t.Fatal(err)
	}
	a := &anchor{dir: dir, director: ip(10), b1: ip(11), b2: ip(12)}
	a.env = append(os.Environ(), "ANCHOR_DIR="+dir, "ANCHOR_MODE=full", "NUSERS="+strconv.Itoa(nUsers),
		"ANCHOR_DIRECTOR_IP="+a.director.String(), "ANCHOR_B1_IP="+a.b1.String(), "ANCHOR_B2_IP="+a.b2.String())
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "director", "log", "dovecot.log"))
			t.Logf("Dovecot director log (end):\n%s", log[max(0, len(log)-3000):])
		}
		t1 := time.Now()
		a.stopAll()
		td := exec.Command(filepath.Join(shared, "anchor", "teardown.sh"), "--purge")
		td.Env = a.env
		if out, err := td.CombinedOutput(); err != nil {
			t.Logf("teardown: %v\n%s", err, out)
		}
		t.Logf("teardown %v", time.Since(t1))
		os.RemoveAll(dir)
	})
	cmd := exec.Command(setup)
	cmd.Env = a.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("anchor setup: %v\n%s", err, out)
	}
	return a
}

// imapSession logs user in at addr and keeps the session open until close.
type imapSession struct {
	c net.Conn
	r *bufio.Reader
}

func (s *imapSession) cmd(tag, text string) (string, error) {
	s.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(s.c, "%s %s\r\n", tag, text); err != nil {
		return "", err
	}
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(line, tag+" ") {
			return strings.TrimSpace(line), nil
		}
	}
}

func login(addr, user string) (*imapSession, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	s := &imapSession{c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if greet, err := s.r.ReadString('\n'); err != nil || !strings.HasPrefix(greet, "* OK") {
		c.Close()
		return nil, fmt.Errorf("%s: greeting %q %v", user, greet, err)
	}
	if reply, err := s.cmd("a", "LOGIN "+user+" pass"); err != nil || !strings.HasPrefix(reply, "a OK") {
		c.Close()
		return nil, fmt.Errorf("%s: LOGIN: %q %v", user, reply, err)
	}
	return s, nil
}

func (s *imapSession) close() {
	s.cmd("z", "LOGOUT")
	s.c.Close()
}

func userName(i int) string { return fmt.Sprintf("user%03d", i) }

// whereLoggedIn logs users in at addr in batches and returns, per user, the
// backend whose own `who` shows the session.
func whereLoggedIn(t *testing.T, addr string, users []string, backends []*testenv.Backend) map[string]netip.Addr {
	t.Helper()
	waitNoSessions(t, backends) // what the backends show from here on is these users' sessions
	where := map[string]netip.Addr{}
	for start := 0; start < len(users); start += batch {
		part := users[start:min(start+batch, len(users))]
		sessions := make([]*imapSession, len(part))
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for i, u := range part {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				sessions[i], errs[i] = login(addr, u)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("login through %s: %v", addr, err)
			}
		}
		seen := map[string]netip.Addr{}
		for _, b := range backends {
			for _, row := range b.Who(t) {
				if prev, dup := seen[row.Username]; dup && prev != b.IP {
					t.Errorf("%s has sessions on both %s and %s", row.Username, prev, b.IP)
				}
				seen[row.Username] = b.IP
			}
		}
		for _, u := range part {
			ip, ok := seen[u]
			if !ok {
				t.Fatalf("%s logged in through %s but no backend's who shows it", u, addr)
			}
			where[u] = ip
		}
		for _, s := range sessions {
			s.close()
		}
	}
	return where
}

// waitNoSessions waits until no backend's who shows a session.
func waitNoSessions(t *testing.T, backends []*testenv.Backend) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		for _, b := range backends {
			n += len(b.Who(t))
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends still show %d users' sessions", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func adminDial(t *testing.T, addr string) *dirimport.Client {
	t.Helper()
	c, err := dirimport.Dial(addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// lookup is USER-LOOKUP's current and hashed host of user.
func lookup(t *testing.T, c *dirimport.Client, user string) (current, hashed string) {
	t.Helper()
	reply, err := c.Cmd("USER-LOOKUP", user)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(reply, "\t")
	if len(f) < 3 {
		t.Fatalf("USER-LOOKUP %s: %q", user, reply)
	}
	return f[0], f[2]
}

func TestImportFromDovecotDirector(t *testing.T) {
	t0 := time.Now()
	a := startAnchor(t)
	t.Logf("anchor up after %v", time.Since(t0))
	backends := a.backends()
	dovecotIMAP := net.JoinHostPort(a.director.String(), strconv.Itoa(imapPort))
	dovecotAPI := "http://" + net.JoinHostPort(a.director.String(), strconv.Itoa(httpPort))

	users := make([]string, nUsers)
	for i := range users {
		users[i] = userName(i + 1)
	}
	where := whereLoggedIn(t, dovecotIMAP, users, backends)
	t.Logf("500 logins through Dovecot after %v", time.Since(t0))

	// Move every 25th user to the backend its ring position does not give it.
	var moved []string
	for i := 0; i < nUsers && len(moved) < nMoved; i += nUsers / nMoved {
		u := users[i]
		other := a.b1
		if where[u] == a.b1 {
			other = a.b2
		}
		if _, code, err := testenv.DoveadmCall(dovecotAPI, password, "directorMove",
			map[string]any{"user": u, "host": other.String()}); err != nil || code != 0 {
			t.Fatalf("directorMove %s %s: exit %d %v", u, other, code, err)
		}
		moved = append(moved, u)
	}
	for u, ip := range whereLoggedIn(t, dovecotIMAP, moved, backends) {
		if ip == where[u] {
			t.Fatalf("%s still logs in on %s after directorMove", u, ip)
		}
		where[u] = ip
	}
	// A fresh connection per phase: Dovecot's director closes an admin
	// connection that sat open while users were moved.
	dovecot := adminDial(t, a.adminSocket())
	for _, u := range moved {
		if cur, hashed := lookup(t, dovecot, u); cur == hashed || cur != where[u].String() {
			t.Fatalf("Dovecot: %s current %s hashed %s, who says %s", u, cur, hashed, where[u])
		}
	}
	// Host attributes the import must carry: a vhost count, a tagged host that is down.
	tagged := netip.AddrFrom4([4]byte{a.b1.As4()[0], a.b1.As4()[1], a.b1.As4()[2], 13})
	for _, c := range [][]string{{"HOST-UPDATE", a.b2.String(), "50"}, {"HOST-SET", tagged.String() + "@blue", "7"}, {"HOST-DOWN", tagged.String()}} {
		if reply, err := dovecot.Cmd(c...); err != nil || reply != "OK" {
			t.Fatalf("Dovecot %v: %q %v", c, reply, err)
		}
	}

	t.Logf("moves after %v", time.Since(t0))
	u := newUsher(t, a, 20)
	u.start(t)
	t.Logf("usher up after %v", time.Since(t0))
	usherAdmin := adminDial(t, u.adminSocket)
	// Without the import usher would send the moved users to their ring position.
	for _, m := range moved {
		if _, hashed := lookup(t, usherAdmin, m); hashed == where[m].String() {
			t.Fatalf("usher's ring gives %s the backend it was moved to (%s): the test could not fail", m, hashed)
		}
	}

	out1 := u.runImport(t, a.adminSocket())
	want1 := fmt.Sprintf("hosts: 3 read, 1 added, 1 updated, 1 unchanged, 0 failed\nusers: %d read, %d imported, 0 unchanged, 0 kept (newer in usher), 0 expired, 0 failed\n", nUsers, nUsers)
	if out1 != want1 {
		t.Fatalf("first import:\n%s\nwant:\n%s", out1, want1)
	}
	out2 := u.runImport(t, a.adminSocket())
	want2 := fmt.Sprintf("hosts: 3 read, 0 added, 0 updated, 3 unchanged, 0 failed\nusers: %d read, 0 imported, %d unchanged, 0 kept (newer in usher), 0 expired, 0 failed\n", nUsers, nUsers)
	if out2 != want2 {
		t.Fatalf("second import:\n%s\nwant:\n%s", out2, want2)
	}
	checkSameState(t, adminDial(t, a.adminSocket()), usherAdmin)

	t.Logf("imports after %v", time.Since(t0))
	got := whereLoggedIn(t, u.imap, users, backends)
	t.Logf("500 logins through usher after %v", time.Since(t0))
	for _, name := range users {
		if got[name] != where[name] {
			t.Errorf("%s: through usher on %s, Dovecot had it on %s", name, got[name], where[name])
		}
	}
	if out3 := u.runImport(t, a.adminSocket()); !strings.Contains(out3, " 0 imported,") || !strings.Contains(out3, " 0 added, 0 updated,") {
		t.Errorf("import after the logins through usher changed something:\n%s", out3)
	}

	// -offline refuses the state of a running usher (it holds the lock) and changes nothing.
	cmd := exec.Command(usherBin, "import", "-a", a.adminSocket(), "-c", u.Conf, "-offline")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 75 || !strings.Contains(string(out), "state") {
		t.Errorf("offline import into a running usher: %v\n%s", err, out)
	}
	// The same into a stopped usher's state_dir: a second director, not started yet.
	off := newUsher(t, a, 21)
	if out := off.runImport(t, a.adminSocket(), "-offline"); out != want1 {
		t.Fatalf("offline import:\n%s\nwant:\n%s", out, want1)
	}
	if out := off.runImport(t, a.adminSocket(), "-offline"); out != want2 {
		t.Fatalf("second offline import:\n%s\nwant:\n%s", out, want2)
	}
	off.start(t)
	checkSameState(t, adminDial(t, a.adminSocket()), adminDial(t, off.adminSocket))
}

// checkSameState compares the two directors' HOST-LIST (address, vhosts,
// tag, up/down) and USER-LIST (hash, backend, expiry).
func checkSameState(t *testing.T, dovecot, usher *dirimport.Client) {
	t.Helper()
	list := func(c *dirimport.Client, cmd string, keep func([]string) string) []string {
		var rows []string
		if err := c.List(func(f []string) error { rows = append(rows, keep(f)); return nil }, cmd); err != nil {
			t.Fatal(err)
		}
		slices.Sort(rows)
		return rows
	}
	hostKey := func(f []string) string { return strings.Join([]string{f[0], f[1], f[3], f[4]}, " ") }
	userKey := func(f []string) string { return strings.Join(f[:3], " ") }
	if d, u := list(dovecot, "HOST-LIST", hostKey), list(usher, "HOST-LIST", hostKey); !slices.Equal(d, u) {
		t.Errorf("HOST-LIST: Dovecot %q, usher %q", d, u)
	}
	if d, u := list(dovecot, "USER-LIST", userKey), list(usher, "USER-LIST", userKey); !slices.Equal(d, u) {
		t.Errorf("USER-LIST differs: Dovecot %d rows, usher %d rows", len(d), len(u))
	}
}
