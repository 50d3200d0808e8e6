package ring

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dir "github.com/usher-mail/usher/internal/director"
	"github.com/usher-mail/usher/internal/testenv"
)

// A login that waited for the ring would wait director_queue_timeout (set to
// a minute here) while the ring has no quorum; a login that does not wait
// completes well within loginDeadline even on a loaded machine. The latency
// itself is measured and logged, not asserted.
const (
	slowQueue     = "director_queue_timeout = 60 secs"
	loginDeadline = 20 * time.Second
)

// session is an IMAP session held open through a director.
type session struct {
	user string
	c    net.Conn
	r    *bufio.Reader
	took time.Duration // from connecting to the tagged OK of LOGIN
}

func openSession(t *testing.T, d *director, user string) *session {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", d.Addr(d.IMAPPort), loginDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(start.Add(loginDeadline))
	s := &session{user: user, c: c, r: bufio.NewReader(c)}
	if l, err := s.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting of %s: %q %v", d.IP, l, err)
	}
	fmt.Fprintf(c, "a LOGIN %s pass\r\n", user)
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("login of %s through %s did not complete within %v: %v", user, d.IP, loginDeadline, err)
		}
		if strings.HasPrefix(l, "a ") {
			if !strings.HasPrefix(l, "a OK") {
				t.Fatalf("login of %s through %s: %s", user, d.IP, strings.TrimSpace(l))
			}
			break
		}
	}
	s.took = time.Since(start)
	c.SetDeadline(time.Time{})
	return s
}

// kicked waits for the director's BYE (or the connection's end).
func (s *session) kicked(timeout time.Duration) bool {
	s.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return err == io.EOF || !isTimeout(err)
		}
		if strings.HasPrefix(l, "* BYE") {
			return true
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// dovecotChoice is the backend Dovecot 2.3's director picks for a new user
// given the hosts (vhost count 100, the default), down ones excluded.
func dovecotChoice(t *testing.T, bs []*testenv.Backend, down map[netip.Addr]bool, user string) netip.Addr {
	t.Helper()
	var hosts []dir.Host
	for _, b := range bs {
		hosts = append(hosts, dir.Host{IP: b.IP, VhostCount: 100, Down: down[b.IP]})
	}
	h, err := dir.UserHash("%Lu", user)
	if err != nil {
		t.Fatal(err)
	}
	ip, ok := dir.NewRings(hosts).Lookup("", h)
	if !ok {
		t.Fatal("no host in the ring")
	}
	return ip
}

// whereLoggedIn asks every backend's own who where each user has sessions.
func whereLoggedIn(t *testing.T, bs []*testenv.Backend) map[string][]netip.Addr {
	t.Helper()
	out := map[string][]netip.Addr{}
	for _, b := range bs {
		for _, r := range b.Who(t) {
			if r.Service == "imap" && !slices.Contains(out[r.Username], b.IP) {
				out[r.Username] = append(out[r.Username], b.IP)
			}
		}
	}
	return out
}

// waitWho polls the backends' who until ok accepts it.
func waitWho(t *testing.T, bs []*testenv.Backend, what string, ok func(map[string][]netip.Addr) error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < 30*time.Second {
		if err = ok(whereLoggedIn(t, bs)); err == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
	return 0
}

// onBackends checks that each user has sessions on exactly its wanted backend.
func onBackends(want map[string]netip.Addr) func(map[string][]netip.Addr) error {
	return func(where map[string][]netip.Addr) error {
		for u, ip := range want {
			if got := where[u]; len(got) != 1 || got[0] != ip {
				return fmt.Errorf("%s on %v, want only %s", u, got, ip)
			}
		}
		return nil
	}
}

// conflicts reads d's conflict counter, which must be exported.
func conflicts(t *testing.T, d *director) float64 {
	t.Helper()
	const series = "usher_director_assignment_conflicts_total"
	if !strings.Contains(scrape(t, d), "\n"+series+" ") {
		t.Fatalf("%s not exported by %s", series, d.IP)
	}
	return metric(t, d, series)
}

func latencies(ss []*session) string {
	var ds []time.Duration
	for _, s := range ss {
		ds = append(ds, s.took)
	}
	slices.Sort(ds)
	return fmt.Sprintf("median %v, max %v", ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

// TestRingNewUsersWithoutQuorum: two of three directors stopped, new users
// log in on the third without waiting for the ring, each on the backend
// Dovecot would choose; after SIGCONT the same users through another
// director land on the same backends, and nobody is on two.
func TestRingNewUsersWithoutQuorum(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 20})
	bs := cl.Backends()
	ds := startRingWith(t, cl, 3, "", slowQueue)
	waitLeader(t, ds)
	ds[0].Signal(syscall.SIGSTOP)
	ds[1].Signal(syscall.SIGSTOP)

	want := map[string]netip.Addr{}
	var first []*session
	for _, u := range cl.Users() {
		first = append(first, openSession(t, ds[2], u))
		want[u] = dovecotChoice(t, bs, nil, u)
	}
	t.Logf("20 new users logged in on the director without a quorum: %s", latencies(first))
	waitWho(t, bs, "new users on their backends", onBackends(want))

	ds[0].Signal(syscall.SIGCONT)
	ds[1].Signal(syscall.SIGCONT)
	var second []*session
	for _, u := range cl.Users() {
		second = append(second, openSession(t, ds[0], u))
	}
	t.Logf("the same users through another director after SIGCONT: %s", latencies(second))
	waitWho(t, bs, "second logins on the same backends", onBackends(want))
	for _, s := range first {
		if s.kicked(200 * time.Millisecond) {
			t.Fatalf("%s was kicked", s.user)
		}
	}
	if n := conflicts(t, ds[2]); n != 0 {
		t.Fatalf("%v conflicts", n)
	}
}

// TestRingOfTwoOneKilled: the usual two directors behind a load balancer,
// one SIGKILLed: a new user still logs in on the other.
func TestRingOfTwoOneKilled(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 3})
	bs := cl.Backends()
	ds := startRingWith(t, cl, 2, "", slowQueue)
	waitLeader(t, ds)
	ds[0].Kill()
	u := cl.Users()[0]
	s := openSession(t, ds[1], u)
	t.Logf("new user logged in on the surviving director of two in %v", s.took.Round(time.Millisecond))
	waitWho(t, bs, "the new user on its backend", onBackends(map[string]netip.Addr{u: dovecotChoice(t, bs, nil, u)}))
}

// TestRingPartitionConflicts: a cut-off director logs new users in with the
// old host table while the majority marks a backend down and logs some of
// the same users in elsewhere. On healing every conflict is resolved by a
// kick on the cut-off director, which counts them, and every user ends on
// one backend.
func TestRingPartitionConflicts(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 30})
	bs := cl.Backends()
	ds := startRingWith(t, cl, 3, "", slowQueue)
	waitLeader(t, ds)
	users := cl.Users()
	both, minorityOnly, majorityOnly := users[:20], users[20:25], users[25:]
	down := bs[0].IP

	// The cut-off side: only ds[2] runs, with the old host table.
	ds[0].Signal(syscall.SIGSTOP)
	ds[1].Signal(syscall.SIGSTOP)
	cut := map[string]*session{}
	for _, u := range append(slices.Clone(both), minorityOnly...) {
		cut[u] = openSession(t, ds[2], u)
	}

	// The majority side: ds[2] stopped, the other two mark a backend down
	// and log users in, some of them the same.
	ds[2].Signal(syscall.SIGSTOP)
	ds[0].Signal(syscall.SIGCONT)
	ds[1].Signal(syscall.SIGCONT)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, code := ds[0].api("directorDown", map[string]any{"host": down.String()})
		if code == 0 {
			break
		}
		if code != 75 && code != -1 || time.Now().After(deadline) {
			t.Fatalf("directorDown on the majority: exit code %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cutWhere := whereLoggedIn(t, bs)
	for _, u := range append(slices.Clone(both), majorityOnly...) {
		openSession(t, ds[0], u)
	}

	// The majority recorded its logins first. (Usually it routed with the
	// new host table; a record the cut-off director appended as leader just
	// before it was cut off can reach the majority and commit there, and
	// then the majority followed it.) A user of both sides now on two
	// backends is a conflict the cut-off director must lose.
	var losers []*session
	want := map[string]netip.Addr{}
	for u, ips := range whereLoggedIn(t, bs) {
		switch {
		case len(ips) == 1:
			want[u] = ips[0]
		case len(ips) == 2 && len(cutWhere[u]) == 1 && slices.Contains(both, u):
			want[u] = ips[0]
			if ips[0] == cutWhere[u][0] {
				want[u] = ips[1]
			}
			losers = append(losers, cut[u])
		default:
			t.Fatalf("%s on %v during the partition (cut-off side: %v)", u, ips, cutWhere[u])
		}
	}
	if len(want) != len(users) {
		t.Fatalf("%d of %d users have sessions", len(want), len(users))
	}
	for _, u := range minorityOnly {
		if want[u] != dovecotChoice(t, bs, nil, u) {
			t.Fatalf("%s on %s, the old host table says %s", u, want[u], dovecotChoice(t, bs, nil, u))
		}
	}
	if len(losers) == 0 {
		t.Fatal("no user of both sides changed backend: the test proves nothing")
	}

	healed := time.Now()
	ds[2].Signal(syscall.SIGCONT)
	for _, s := range losers {
		if !s.kicked(30 * time.Second) {
			t.Fatalf("%s's session on the losing backend was not kicked", s.user)
		}
	}
	resolved := time.Since(healed)
	took := waitWho(t, bs, "every user on one backend after healing", onBackends(want))
	t.Logf("%d conflicts resolved by kicks %v after SIGCONT of the cut-off director (backends' who agreed %v later)",
		len(losers), resolved.Round(time.Millisecond), took.Round(time.Millisecond))
	if n := conflicts(t, ds[2]); n != float64(len(losers)) {
		t.Fatalf("conflict counter %v, want %d", n, len(losers))
	}
	for _, d := range ds[:2] {
		if n := conflicts(t, d); n != 0 {
			t.Fatalf("%v conflicts on the majority's %s", n, d.IP)
		}
	}
	for u, s := range cut {
		if !slices.Contains(losers, s) && s.kicked(200*time.Millisecond) {
			t.Fatalf("%s kicked without a conflict", u)
		}
	}
}
