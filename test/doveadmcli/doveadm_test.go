package doveadmcli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dovecotTime is doveadm's unixdate2str layout.
const dovecotTime = "2006-01-02 15:04:05"

func TestStatusAddUpDownUpdateRemove(t *testing.T) {
	u := startUsher(t)
	b1, b2 := u.Backends[0], u.Backends[1]
	prefix := strings.TrimSuffix(b1, "11")
	b3, b4 := prefix+"13", prefix+"14"

	// The human table: header as Dovecot 2.3.19 prints it, one row per host
	// sorted by IP.
	lines := strings.Split(strings.TrimRight(u.ok("", "status"), "\n"), "\n")
	if got := squash(lines[0]); got != "mail server ip tag vhosts state state changed users" {
		t.Errorf("status header = %q", lines[0])
	}
	if len(lines) != 3 || !strings.HasPrefix(lines[1], b1+" ") || !strings.HasPrefix(lines[2], b2+" ") {
		t.Fatalf("status:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) != 5 || f[1] != "100" || f[2] != "up" || f[3] != "-" || f[4] != "0" {
			t.Errorf("status row %q, want <ip> 100 up - 0", l)
		}
	}

	u.ok("", "add", b3, "50")
	u.ok("", "add", "-t", "eu", b4)
	hs := u.hosts()
	if len(hs) != 4 {
		t.Fatalf("after add: %v", hs)
	}
	if h := hs[b3]; h.Vhosts != "50" || h.Tag != "" || h.State != "up" {
		t.Errorf("added %s: %+v", b3, h)
	}
	if h := hs[b4]; h.Vhosts != "100" || h.Tag != "eu" || h.State != "up" {
		t.Errorf("added %s with tag: %+v", b4, h)
	}

	u.ok("", "down", b1)
	h := u.hosts()[b1]
	if h.State != "down" {
		t.Errorf("after down: %+v", h)
	}
	if _, err := time.ParseInLocation(dovecotTime, h.Changed, time.Local); err != nil {
		t.Errorf("state changed %q after down: %v", h.Changed, err)
	}
	u.ok("", "up", b1)
	if h := u.hosts()[b1]; h.State != "up" {
		t.Errorf("after up: %+v", h)
	}

	u.ok("", "update", b3, "20")
	if h := u.hosts()[b3]; h.Vhosts != "20" {
		t.Errorf("after update: %+v", h)
	}
	u.ok("", "remove", b3)
	if _, ok := u.hosts()[b3]; ok {
		t.Errorf("%s still listed after remove", b3)
	}

	// Unknown hosts: doveadm's EX_NOUSER and its own message.
	r := u.doveadm("", "down", prefix+"99")
	if r.Code != 68 || !strings.Contains(r.Stderr, prefix+"99: doesn't exist") {
		t.Errorf("down unknown host: %+v", r)
	}
	r = u.doveadm("", "remove", prefix+"99")
	if r.Code != 68 {
		t.Errorf("remove unknown host: %+v", r)
	}

	// dump prints commands that would recreate the hosts, tags as ip@tag.
	want := fmt.Sprintf("doveadm director add -a %[1]s %[2]s 100\n"+
		"doveadm director add -a %[1]s %[3]s 100\n"+
		"doveadm director add -a %[1]s %[4]s@eu 100\n", u.Admin, b1, b2, b4)
	if got := u.ok("", "dump"); got != want {
		t.Errorf("dump:\n%s\nwant:\n%s", got, want)
	}

	// JSON formatter: the keys doveadm builds from the HOST-LIST reply.
	var rows []map[string]string
	if err := json.Unmarshal([]byte(u.ok("json", "status")), &rows); err != nil {
		t.Fatalf("json status: %v", err)
	}
	if len(rows) != 3 || rows[2]["mail server ip"] != b4 || rows[2]["tag"] != "eu" ||
		rows[2]["state-changed"] != "-" || rows[0]["state"] != "up" {
		t.Errorf("json status: %v", rows)
	}
}

func TestRingStatus(t *testing.T) {
	u := startUsher(t)
	lines := strings.Split(strings.TrimRight(u.ok("", "ring status"), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("ring status:\n%s", strings.Join(lines, "\n"))
	}
	if got := squash(lines[0]); got != "director ip port type last failed status ping ms input output buffered buffered peak last read last write" {
		t.Errorf("ring status header = %q", lines[0])
	}
	// A ring of one: ourselves, at director_servers' port, synced.
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != u.IP.String() || f[1] != "9090" ||
		f[2] != "self" || f[3] != "never" || !strings.Contains(lines[1], "ring synced") {
		t.Errorf("ring status row %q", lines[1])
	}
}

func TestMoveMapFlushKick(t *testing.T) {
	u := startUsher(t)

	// Unknown user: no mapping yet, but the ring still answers.
	s := u.user("alice")
	if s.Current != "n/a" || s.Expires != "-1" || s.Hashed == "" || s.Hashed != s.Initial {
		t.Fatalf("status alice before move: %+v", s)
	}
	hashed := s.Hashed
	other := u.Backends[0]
	if other == hashed {
		other = u.Backends[1]
	}

	// move creates the mapping, away from where the hash would put alice.
	u.ok("", "move", "alice", other)
	s = u.user("alice")
	if s.Current != other || s.Hashed != hashed {
		t.Fatalf("status alice after move to %s: %+v", other, s)
	}
	if _, err := time.ParseInLocation(dovecotTime, s.Expires, time.Local); err != nil {
		t.Errorf("expires %q: %v", s.Expires, err)
	}
	if h := u.hosts()[other]; h.Users != "1" {
		t.Errorf("users on %s after move: %+v", other, h)
	}
	r := u.doveadm("", "move", "bob", "127.0.0.254")
	if r.Code != 68 || !strings.Contains(r.Stderr, "Host '127.0.0.254' doesn't exist") {
		t.Errorf("move to unknown host: %+v", r)
	}

	// map with a users file: only users the director knows are listed.
	users := filepath.Join(t.TempDir(), "users")
	must(t, os.WriteFile(users, []byte("alice\nbob\n"), 0o644))
	lines := strings.Split(strings.TrimRight(u.ok("", "map", "-f", users), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "user ") {
		t.Fatalf("map:\n%s", strings.Join(lines, "\n"))
	}
	if f := strings.Fields(lines[1]); len(f) != 5 || f[0] != "alice" || f[2] != other {
		t.Errorf("map row %q, want alice <hash> %s <expire date time>", lines[1], other)
	}
	if out := u.ok("", "map", "-f", users, hashed); strings.Contains(out, "alice") {
		t.Errorf("map %s lists alice, who is on %s:\n%s", hashed, other, out)
	}

	// flush takes alice off the host; with no sessions to kick she lands
	// where the hash says. The move is a raft round trip, so wait for it.
	u.ok("", "flush", other)
	waitFor(t, "alice to leave "+other, func() bool {
		return u.user("alice").Current != other && u.hosts()[other].Users == "0"
	})
	u.ok("", "flush", "all")

	// kick with no sessions succeeds and prints nothing.
	if out := u.ok("", "kick", "alice"); out != "" {
		t.Errorf("kick printed %q", out)
	}
}

// waitFor polls cond; the bound only keeps a broken build from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// squash collapses the column padding, which depends on the widest value.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
