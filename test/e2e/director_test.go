package e2e

import (
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// clientIP is a loopback address distinct from usher's, so a backend's
// `who` can tell the forwarded client address from the proxy's own.
func clientIP(u *usher, last byte) netip.Addr {
	a := u.IP.As4()
	a[3] = last
	return netip.AddrFrom4(a)
}

func TestBackendWhoShowsClientIP(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	src := clientIP(u, 77)
	loginIMAP(t, src, u.Addr(u.IMAPPort), "user004")
	b := backendOf(t, u, cl, "user004")
	rows := b.Who(t)
	if len(rows) != 1 || rows[0].Username != "user004" || len(rows[0].IPs) != 1 || rows[0].IPs[0] != src {
		t.Fatalf("backend who = %+v, want user004 from %s", rows, src)
	}
	who := u.mustAPI("who", nil)
	if len(who) != 1 || who[0]["username"] != "user004" || who[0]["ips"] != "("+src.String()+")" || who[0]["service"] != "imap" {
		t.Fatalf("usher who = %v", who)
	}
}

func TestPenaltyAfterThreeFailures(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	src := clientIP(u, 51)
	c := dialFrom(t, src, u.Addr(u.IMAPPort))
	for i, pw := range []string{"wrong1", "wrong2", "wrong3"} {
		_, tagged := c.cmd(t, "a", "LOGIN user005 "+pw)
		if tagged != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("attempt %d: %q", i+1, tagged)
		}
	}
	rows := u.mustAPI("penalty", nil)
	if len(rows) != 1 || rows[0]["IP"] != src.String() || rows[0]["penalty"] != "3" {
		t.Fatalf("penalty = %v", rows)
	}
	// Penalty 3 delays the next attempt by min(2*2^3, 15) = 15 s before it
	// even reaches the backend: a lower bound, guaranteed by the sleep.
	start := time.Now()
	_, tagged := c.cmd(t, "b", "LOGIN user005 pass")
	if !strings.HasPrefix(tagged, "b OK") {
		t.Fatalf("fourth attempt: %q", tagged)
	}
	if d := time.Since(start); d < 15*time.Second {
		t.Fatalf("fourth attempt answered after %v, want the 15 s penalty delay", d)
	}
	rows = u.mustAPI("penalty", map[string]any{"netmask": src.String() + "/32"})
	if len(rows) != 1 || rows[0]["penalty"] != "0" {
		t.Fatalf("penalty after success = %v", rows)
	}
}

func TestDeadBackendUnavailable(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	b := backendOf(t, u, cl, "user006")
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, netip.Addr{}, u.Addr(u.IMAPPort))
	_, tagged := c.cmd(t, "a", "LOGIN user006 pass")
	if tagged != "a NO [UNAVAILABLE] Account is temporarily unavailable." {
		t.Fatalf("login to dead backend: %q", tagged)
	}
	if who := u.mustAPI("who", nil); len(who) != 0 {
		t.Fatalf("sessions left behind: %v", who)
	}
	// The client may retry once the backend is back.
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if _, tagged := c.cmd(t, "b", "LOGIN user006 pass"); !strings.HasPrefix(tagged, "b OK") {
		t.Fatalf("retry: %q", tagged)
	}
}

func TestMoveKicksAndNextLoginLandsOnNewHost(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), "user007")
	old := backendOf(t, u, cl, "user007")
	dst := otherBackend(cl, old)
	u.mustAPI("directorMove", map[string]any{"user": "user007", "host": dst.IP.String()})
	// The live session is closed, with a BYE first (usher's deliberate
	// difference from 2.3, which just cuts the connection).
	var got []string
	for {
		l := c.line(t)
		got = append(got, l)
		if strings.HasPrefix(l, "EOF") {
			break
		}
	}
	if !strings.HasPrefix(got[0], "* BYE") {
		t.Fatalf("kicked session got %q", got)
	}
	if st := u.mustAPI("directorStatus", map[string]any{"user": "user007"}); st[0]["status"] != dst.IP.String() {
		t.Fatalf("after move: %v", st)
	}
	// The next login waits out the kick delay and lands on the new host.
	loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), "user007")
	if rows := dst.Who(t); len(rows) != 1 || rows[0].Username != "user007" {
		t.Fatalf("new host who = %+v", rows)
	}
	waitFor(t, "old host to drop the session", func() bool { return len(old.Who(t)) == 0 })
}

func TestDownKeepsExistingMappings(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 40})
	u := startUsher(t, cl, usherOpts{})
	// Map every user by logging each in once.
	for _, user := range cl.Users()[:20] {
		c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), user)
		c.cmd(t, "b", "LOGOUT")
	}
	down := cl.Backends()[0]
	before := map[string]string{}
	for _, user := range cl.Users()[:20] {
		before[user] = u.mustAPI("directorStatus", map[string]any{"user": user})[0]["status"].(string)
	}
	u.mustAPI("directorDown", map[string]any{"host": down.IP.String()})
	st := u.mustAPI("directorStatus", nil)
	for _, r := range st {
		if r["mail server ip"] == down.IP.String() && r["state"] != "down" {
			t.Fatalf("status after down: %v", st)
		}
	}
	// Existing users keep their host, even the down one.
	for _, user := range cl.Users()[:20] {
		c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), user)
		c.cmd(t, "b", "LOGOUT")
		if got := u.mustAPI("directorStatus", map[string]any{"user": user})[0]["status"]; got != before[user] {
			t.Fatalf("%s moved from %s to %s after down", user, before[user], got)
		}
	}
	// New users never land on the down host.
	for _, user := range cl.Users()[20:] {
		c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), user)
		c.cmd(t, "b", "LOGOUT")
		if got := u.mustAPI("directorStatus", map[string]any{"user": user})[0]["status"]; got == down.IP.String() {
			t.Fatalf("new user %s landed on the down host", user)
		}
	}
}

func TestKill9KeepsHostsAndVhosts(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	extra := clientIP(u, 13)
	b1 := cl.Backends()[0]
	u.mustAPI("directorAdd", map[string]any{"host": extra.String(), "vhostCount": "50"})
	u.mustAPI("directorUpdate", map[string]any{"host": b1.IP.String(), "vhostCount": "70"})
	u.mustAPI("directorDown", map[string]any{"host": extra.String()})
	want := u.mustAPI("directorStatus", nil)
	u.Kill()
	u.start()
	got := u.mustAPI("directorStatus", nil)
	if len(got) != len(want) {
		t.Fatalf("after kill -9: %v, want %v", got, want)
	}
	for i := range want {
		for _, k := range []string{"mail server ip", "vhosts", "state", "tag"} {
			if got[i][k] != want[i][k] {
				t.Fatalf("after kill -9 row %d %s = %v, want %v", i, k, got[i][k], want[i][k])
			}
		}
	}
}

func TestSignals(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	u := startUsher(t, cl, usherOpts{})
	c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), "user008")
	good, _ := os.ReadFile(u.Conf)
	// A broken file is rejected on SIGHUP; the old settings and the session stay.
	os.WriteFile(u.Conf, append(append([]byte{}, good...), []byte("\nno_such_setting = 1\n")...), 0o600)
	u.Signal(syscall.SIGHUP)
	waitFor(t, "reload to be rejected", func() bool { return strings.Contains(u.Log.String(), "no_such_setting") })
	u.mustAPI("who", nil)
	// A good file with a new password takes effect without dropping the session.
	os.WriteFile(u.Conf, []byte(strings.Replace(string(good), "doveadm_password = hellodoveadm", "doveadm_password = newpass", 1)), 0o600)
	u.Signal(syscall.SIGHUP)
	waitFor(t, "new password", func() bool {
		_, code := u.apiAs("doveadm", "newpass", "who")
		return code == 0
	})
	if _, tagged := c.cmd(t, "b", "NOOP"); !strings.HasPrefix(tagged, "b OK") {
		t.Fatalf("session after reload: %q", tagged)
	}
	// SIGTERM ends sessions within the bound and exits 0.
	if code := u.Stop(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
}
