package ring

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// holdSession keeps user logged in through addr like a mail client: when
// the session ends (a kick), it logs in again, until stop is closed. It
// returns how many logins succeeded.
func holdSession(addr, user string, stop <-chan struct{}) int {
	logins := 0
	for {
		select {
		case <-stop:
			return logins
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() { <-stop; c.Close() }()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "a LOGIN %s pass\r\n", user)
		ok := false
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if strings.HasPrefix(l, "a ") {
				ok = strings.HasPrefix(l, "a OK")
				break
			}
		}
		if ok {
			logins++
			// Idle until the session is closed.
			for {
				if _, err := r.ReadString('\n'); err != nil {
					break
				}
			}
		} else {
			time.Sleep(100 * time.Millisecond) // e.g. NO [UNAVAILABLE] while being moved
		}
		c.Close()
	}
}

// mapUsers maps users through LMTP on every director, ten connections at a time.
func mapUsers(t *testing.T, ds []*director, users []string) {
	t.Helper()
	const workers = 10
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var mine []string
			for i := w; i < len(users); i += workers {
				mine = append(mine, users[i])
			}
			d := ds[w%len(ds)]
			errs <- lmtpRoute(d.Addr(d.LMTPPort), mine)
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A director records new users in group commits after their logins:
	// wait until every director has every mapping.
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range ds {
		for slices.Contains(lookupOn(t, d, users), "") {
			if time.Now().After(deadline) {
				t.Fatalf("users not mapped on %s", d.IP)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func whoUsers(t *testing.T, b *testenv.Backend) map[string]bool {
	out := map[string]bool{}
	for _, r := range b.Who(t) {
		if r.Service == "imap" && r.Connections > 0 {
			out[r.Username] = true
		}
	}
	return out
}

func atoi(v any) int {
	s, _ := v.(string)
	n, _ := strconv.Atoi(s)
	return n
}

// TestDrainUnderLoad: drain of a backend with 300 users mapped to it and
// 50 of them in live IMAP sessions that log in again when kicked.
// At most director_max_parallel_moves moves are in flight, the drain ends
// with no user and no session on the backend, and no user is on both
// backends at any sample of the backends' own who (every 100 ms). Health
// checks are off here (usher_health_check = none), as with an external
// monitor.
func TestDrainUnderLoad(t *testing.T) {
	const maxMoves = 50
	t0 := time.Now()
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 300})
	b1, b2 := cl.Backends()[0], cl.Backends()[1]
	// Every user maps to b1 first; b2 joins after.
	ds := startRingWith(t, cl, 3, b1.IP.String(), fmt.Sprintf("usher_health_check = none\ndirector_max_parallel_moves = %d\n", maxMoves))
	waitLeader(t, ds)
	t.Logf("ring up after %v", time.Since(t0))
	users := cl.Users()
	mapUsers(t, ds, users)
	ds[1].mustAPI("directorAdd", map[string]any{"host": b2.IP.String()})
	t.Logf("users mapped after %v", time.Since(t0))
	var onB1 []string
	for i, h := range lookupOn(t, ds[1], users) {
		if h == b1.IP.String() {
			onB1 = append(onB1, users[i])
		}
	}
	if len(onB1) != len(users) {
		t.Fatalf("only %d users on b1", len(onB1))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	logins := make([]int, 50)
	for i, u := range onB1[:50] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := ds[i%3]
			logins[i] = holdSession(d.Addr(d.IMAPPort), u, stop)
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for len(whoUsers(t, b1)) < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions did not reach b1: %d", len(whoUsers(t, b1)))
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Logf("sessions up after %v", time.Since(t0))
	start := time.Now()
	rows := ds[0].mustAPI("usherDirectorDrain", map[string]any{"host": b1.IP.String()})
	if len(rows) != 1 || rows[0]["state"] != "running" {
		t.Fatalf("drain answered %v", rows)
	}
	samples, peak := 0, 0
	var last map[string]any
	for {
		// Destination first: a user seen on b2 and then still on b1 was on both.
		on2, on1 := whoUsers(t, b2), whoUsers(t, b1)
		samples++
		for u := range on2 {
			if on1[u] {
				t.Errorf("%s on both backends at %v", u, time.Since(start))
			}
		}
		for _, r := range ds[0].mustAPI("usherDirectorJobs", nil) {
			if r["job"] == "drain" && r["host"] == b1.IP.String() {
				last = r
				peak = max(peak, atoi(r["in-flight"]))
			}
		}
		if last != nil && last["state"] != "running" && len(on1) == 0 {
			break
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("drain did not finish: %v, %d sessions on b1", last, len(on1))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("drain of %d users (%d in sessions) took %v: %v; %d who samples, peak in flight %d sampled",
		len(onB1), 50, time.Since(start).Round(10*time.Millisecond), last, samples, peak)
	if last["state"] != "done" || atoi(last["users-left"]) != 0 || atoi(last["moved"]) < len(onB1) {
		t.Errorf("drain ended as %v", last)
	}
	if p := atoi(last["peak-in-flight"]); p > maxMoves || peak > maxMoves {
		t.Errorf("peak in flight %d (sampled %d), director_max_parallel_moves %d", p, peak, maxMoves)
	}
	for _, d := range ds {
		for i, h := range lookupOn(t, d, users) {
			if h == b1.IP.String() {
				t.Errorf("%s still mapped to the drained backend on %s", users[i], d.IP)
			}
		}
	}
	t.Logf("checked after %v", time.Since(t0))
	// The kicked clients are back, on b2.
	deadline = time.Now().Add(30 * time.Second)
	for len(whoUsers(t, b2)) < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 50 sessions back on b2", len(whoUsers(t, b2)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
