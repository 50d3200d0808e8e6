package ring

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestStatusPageShowsTheRing renders a follower's status page in headless
// Chromium: the three members and the leader as directorRingStatus and the
// leader's role show them, and the backends with the user counts
// directorStatus gives at the same moment.
func TestStatusPageShowsTheRing(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 10})
	ds := startRing(t, cl, 3, "")
	leader := waitLeader(t, ds)
	users := cl.Users()
	for i, u := range users { // mapped through every director
		if err := imapLogin(ds[i%3].Addr(ds[i%3].IMAPPort), u, 0); err != nil {
			t.Fatal(err)
		}
	}
	var follower *director
	for _, d := range ds {
		if d != leader {
			follower = d
			break
		}
	}
	follower.mustAPI("directorMove", map[string]any{"user": users[0], "host": cl.Backends()[0].IP.String()})
	// The follower has applied every mapping before the API and the page are compared.
	var hosts []map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		hosts = follower.mustAPI("directorStatus", nil)
		n := 0
		for _, h := range hosts {
			c, _ := strconv.Atoi(fmt.Sprint(h["users"]))
			n += c
		}
		if n == len(users) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower maps %d users, want %d: %v", n, len(users), hosts)
		}
	}
	// The page against directorRingStatus just before and after it: a leader
	// change in between (elections do happen on a loaded machine) means another try.
	var ring []map[string]any
	var page testenv.StatusDOM
	for try := 0; ; try++ {
		ring = follower.mustAPI("directorRingStatus", nil)
		dom := testenv.Chromium(t, follower.IP, follower.APIPort,
			fmt.Sprintf("http://doveadm:hellodoveadm@%s/status", follower.Addr(follower.APIPort)), "--dump-dom")
		page = testenv.ParseStatusDOM(dom)
		if after := follower.mustAPI("directorRingStatus", nil); leaderOf(ring) != "" && leaderOf(ring) == leaderOf(after) {
			break
		}
		if try == 4 {
			t.Fatalf("the leader kept changing: %v", ring)
		}
	}
	var want []string
	for _, r := range ring {
		want = append(want, fmt.Sprintf("%v:%v", r["director ip"], r["port"]))
	}
	if len(want) != 3 || !slices.Equal(page.Ring, want) {
		t.Errorf("ring: page %v, API %v", page.Ring, ring)
	}
	if page.Leader != leaderOf(ring) {
		t.Errorf("leader: page %q, API %q (%v)", page.Leader, leaderOf(ring), ring)
	}
	if len(page.Hosts) != len(hosts) {
		t.Fatalf("backends: page %v, API %v", page.Hosts, hosts)
	}
	for _, h := range hosts {
		ip := fmt.Sprint(h["mail server ip"])
		if got := page.Hosts[ip]; got[0] != "Up" || got[2] != fmt.Sprint(h["users"]) {
			t.Errorf("backend %s: page %v, API %v", ip, got, h)
		}
	}
}

// leaderOf is the ring address of the leader in directorRingStatus rows: a
// peer of type leader, or this director when its status says leader.
func leaderOf(rows []map[string]any) string {
	for _, r := range rows {
		st, _ := r["status"].(string)
		if r["type"] == "leader" || (r["type"] == "self" && strings.HasSuffix(st, ", leader")) {
			return fmt.Sprintf("%v:%v", r["director ip"], r["port"])
		}
	}
	return ""
}
