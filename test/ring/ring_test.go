package ring

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// waitLeader polls until one director reports itself leader.
func waitLeader(t *testing.T, ds []*director) *director {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range ds {
			if d.role() == "leader" {
				return d
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

func hostListed(d *director, ip string) bool {
	rows, code := d.api("directorStatus", nil)
	if code != 0 {
		return false
	}
	for _, r := range rows {
		if r["mail server ip"] == ip {
			return true
		}
	}
	return false
}

// TestRingReplicatesHostsAndMappings: a host added on the first director
// reaches the third, and 10,000 new users assigned through all three map
// identically everywhere.
func TestRingReplicatesHostsAndMappings(t *testing.T) {
	const n = 10000
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: n})
	bs := cl.Backends()
	ds := startRing(t, cl, 3, bs[0].IP.String())
	waitLeader(t, ds)

	rows := ds[0].mustAPI("directorRingStatus", nil)
	if len(rows) != 3 {
		t.Fatalf("directorRingStatus on the first director: %v", rows)
	}
	for _, r := range rows {
		if len(r) != 12 {
			t.Fatalf("directorRingStatus row has %d columns, want 12: %v", len(r), r)
		}
	}

	start := time.Now()
	ds[0].mustAPI("directorAdd", map[string]any{"host": bs[1].IP.String(), "vhostCount": "100"})
	t.Logf("directorAdd answered after %v", time.Since(start))
	deadline := start.Add(30 * time.Second)
	for !hostListed(ds[2], bs[1].IP.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("host added on %s never appeared on %s", ds[0].IP, ds[2].IP)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("host added on the first director listed on the third after %v", time.Since(start))

	users := cl.Users()
	// LMTP routes each recipient on its own, and records a new user once
	// its backend accepted the recipient: the cheapest way to make usher
	// assign. No message is sent.
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string
			for i := w; i < n; i += 12 {
				mine = append(mine, users[i])
			}
			if err := lmtpRoute(ds[w%3].Addr(ds[w%3].LMTPPort), mine); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d new users assigned through three directors in %v", n, time.Since(start))

	// A director records its new users in groups after their logins: the
	// last group may still be on its way to the other directors.
	var maps [3][]string
	for settled := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		missing := ""
		for i, d := range ds {
			a := d.dialAdmin(t)
			maps[i] = a.lookupAll(t, users)
			a.c.Close()
			if j := slices.Index(maps[i], ""); j >= 0 && missing == "" {
				missing = fmt.Sprintf("%s is not mapped on %s", users[j], d.IP)
			}
		}
		if missing == "" {
			t.Logf("every director had every mapping %v after the last login", time.Since(settled))
			break
		}
		if time.Since(settled) > 30*time.Second {
			t.Fatal(missing)
		}
	}
	perHost := map[string]int{}
	for j, u := range users {
		if maps[1][j] != maps[0][j] || maps[2][j] != maps[0][j] {
			t.Fatalf("%s maps to %q, %q, %q on the three directors", u, maps[0][j], maps[1][j], maps[2][j])
		}
		perHost[maps[0][j]]++
	}
	if len(perHost) != 2 {
		t.Fatalf("users per backend: %v; the added host took none", perHost)
	}
	t.Logf("users per backend: %v", perHost)
}

// lmtpRoute sends one RCPT TO per user (in transactions of 200).
func lmtpRoute(addr string, users []string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	r := bufio.NewReader(c)
	reply := func() (string, error) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimRight(l, "\r\n"), nil
			}
		}
	}
	send := func(cmd string) (string, error) {
		if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
			return "", err
		}
		return reply()
	}
	if _, err := reply(); err != nil {
		return err
	}
	if _, err := send("LHLO ringtest"); err != nil {
		return err
	}
	for i, u := range users {
		if i%200 == 0 {
			if i > 0 {
				if _, err := send("RSET"); err != nil {
					return err
				}
			}
			if l, err := send("MAIL FROM:<ringtest@example.invalid>"); err != nil || !strings.HasPrefix(l, "250") {
				return fmt.Errorf("MAIL FROM: %q %v", l, err)
			}
		}
		l, err := send("RCPT TO:<" + u + ">")
		if err != nil {
			return err
		}
		// 250 from the backend: routed and recorded. 451 would be the
		// director's own temporary failure.
		if !strings.HasPrefix(l, "250") {
			return fmt.Errorf("RCPT %s: %s", u, l)
		}
	}
	send("QUIT")
	return nil
}

// imapLogin logs user in through addr, holds the session a moment so the
// backend's who sees it, and logs out.
func imapLogin(addr, user string, hold time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		return fmt.Errorf("greeting %q %v", l, err)
	}
	fmt.Fprintf(c, "a LOGIN %s pass\r\n", user)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, "a ") {
			if !strings.HasPrefix(l, "a OK") {
				return fmt.Errorf("login %s: %s", user, strings.TrimSpace(l))
			}
			break
		}
	}
	time.Sleep(hold)
	fmt.Fprintf(c, "b LOGOUT\r\n")
	return nil
}

// load is a bounded stream of logins through the directors marked up, as
// a load balancer with health checks would send them.
type load struct {
	mu          sync.Mutex
	up          map[*director]bool
	ok, failed  int
	lastOK      time.Time
	longestGap  time.Duration
	firstErrors []string
}

func (l *load) setUp(d *director, up bool) {
	l.mu.Lock()
	l.up[d] = up
	l.mu.Unlock()
}

func (l *load) pick(ds []*director, i int) *director {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range ds {
		if d := ds[(i+k)%len(ds)]; l.up[d] {
			return d
		}
	}
	return nil
}

func (l *load) record(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if err != nil {
		l.failed++
		if len(l.firstErrors) < 10 {
			l.firstErrors = append(l.firstErrors, err.Error())
		}
		return
	}
	l.ok++
	if !l.lastOK.IsZero() {
		l.longestGap = max(l.longestGap, now.Sub(l.lastOK))
	}
	l.lastOK = now
}

// run sends logins of users from workers goroutines until stop closes.
func (l *load) run(ds []*director, users []string, workers int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += workers {
				select {
				case <-stop:
					return
				default:
				}
				d := l.pick(ds, i)
				if d == nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				l.record(imapLogin(d.Addr(d.IMAPPort), users[i%len(users)], 200*time.Millisecond))
			}
		}()
	}
	return &wg
}

// sampleWho asks every backend who is connected until stop closes, and
// reports any user seen on two backends at once.
func sampleWho(bs []*testenv.Backend, stop <-chan struct{}) (samples func() (int, []string)) {
	var mu sync.Mutex
	n := 0
	var twice []string
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			where := map[string]string{}
			for _, b := range bs {
				elems, err := b.Doveadm("who", map[string]any{})
				if err != nil {
					continue
				}
				for _, e := range elems {
					var rows []map[string]any
					if json.Unmarshal(e, &rows) != nil {
						continue
					}
					for _, r := range rows {
						u, _ := r["username"].(string)
						if prev, ok := where[u]; ok && prev != b.Name {
							mu.Lock()
							twice = append(twice, fmt.Sprintf("%s on %s and %s", u, prev, b.Name))
							mu.Unlock()
						}
						where[u] = b.Name
					}
				}
			}
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	return func() (int, []string) {
		mu.Lock()
		defer mu.Unlock()
		return n, append([]string(nil), twice...)
	}
}

// TestRingSurvivesKills: under a stream of logins through all three
// directors, SIGKILL the leader, then a follower, then restart both.
func TestRingSurvivesKills(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 20})
	bs := cl.Backends()
	ds := startRing(t, cl, 3, "")
	waitLeader(t, ds)
	users := cl.Users()
	for _, u := range users { // map every user before the failures
		if err := imapLogin(ds[0].Addr(ds[0].IMAPPort), u, 0); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	ld := &load{up: map[*director]bool{ds[0]: true, ds[1]: true, ds[2]: true}}
	wg := ld.run(ds, users, 6, stop)
	who := sampleWho(bs, stop)

	// Admin writes all along: vhost count 0 keeps the fake hosts out of
	// routing. Only the ones answered OK are checked afterwards.
	var wmu sync.Mutex
	var written []string
	var wwg sync.WaitGroup
	wwg.Add(1)
	go func() {
		defer wwg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			d := ld.pick(ds, i)
			if d == nil {
				continue
			}
			ip := bs[0].IP.As4()
			ip[3] = byte(100 + i%150)
			host := fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3])
			if _, code := d.api("directorAdd", map[string]any{"host": host, "vhostCount": "0"}); code == 0 {
				wmu.Lock()
				written = append(written, host)
				wmu.Unlock()
			}
		}
	}()

	time.Sleep(4 * time.Second)
	leader := waitLeader(t, ds)
	ld.setUp(leader, false)
	leader.Kill()
	t.Logf("killed the leader %s", leader.IP)
	time.Sleep(5 * time.Second)
	var follower *director
	for _, d := range ds {
		if d != leader && follower == nil {
			follower = d
		}
	}
	ld.setUp(follower, false)
	follower.Kill()
	t.Logf("killed a follower %s; one director left, without a quorum", follower.IP)
	time.Sleep(5 * time.Second)
	leader.spawn()
	follower.spawn()
	leader.waitUp()
	follower.waitUp()
	ld.setUp(leader, true)
	ld.setUp(follower, true)
	t.Log("restarted both")
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	wwg.Wait()

	samples, twice := who()
	t.Logf("logins: %d ok, %d failed, longest time without a successful login %v; %d who samples; %d writes answered OK",
		ld.ok, ld.failed, ld.longestGap, samples, len(written))
	if len(twice) > 0 {
		t.Fatalf("a user on two backends at once: %v", twice)
	}
	if samples < 10 {
		t.Fatalf("only %d who samples; the check proves nothing", samples)
	}
	// Mapped users log in on the surviving directors from their local
	// copies throughout: no failure window beyond an election, with a
	// generous margin for two loaded cores.
	if ld.longestGap > 10*time.Second {
		t.Fatalf("no successful login for %v; first errors: %v", ld.longestGap, ld.firstErrors)
	}
	if len(written) == 0 {
		t.Fatal("no write was answered OK")
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range ds {
		for _, h := range written {
			for !hostListed(d, h) {
				if time.Now().After(deadline) {
					t.Fatalf("write answered OK (host %s) missing on %s", h, d.IP)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// TestRingMinorityStopped: a stopped leader is replaced, the majority
// carries on, and the stopped director catches up after SIGCONT.
func TestRingMinorityStopped(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 10})
	bs := cl.Backends()
	ds := startRing(t, cl, 3, "")
	leader := waitLeader(t, ds)
	var rest []*director
	for _, d := range ds {
		if d != leader {
			rest = append(rest, d)
		}
	}
	users := cl.Users()
	for _, u := range users {
		if err := imapLogin(rest[0].Addr(rest[0].IMAPPort), u, 0); err != nil {
			t.Fatal(err)
		}
	}

	leader.Signal(syscall.SIGSTOP)
	start := time.Now()
	ip := bs[0].IP.As4()
	ip[3] = 99
	host := fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3])
	for {
		if _, code := rest[1].api("directorAdd", map[string]any{"host": host, "vhostCount": "0"}); code == 0 {
			break
		} else if code != 75 && code != -1 {
			t.Fatalf("write on the majority while electing: exit code %d, want 0 or 75", code)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatal("the majority never accepted a write")
		}
	}
	t.Logf("majority accepted a write %v after the leader was stopped", time.Since(start))
	for _, d := range rest {
		for _, u := range users[:5] {
			if err := imapLogin(d.Addr(d.IMAPPort), u, 0); err != nil {
				t.Fatalf("mapped user on the majority while the old leader is stopped: %v", err)
			}
		}
	}

	leader.Signal(syscall.SIGCONT)
	start = time.Now()
	deadline := start.Add(60 * time.Second)
	for !hostListed(leader, host) {
		if time.Now().After(deadline) {
			t.Fatalf("the resumed director never caught up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("resumed director caught up %v after SIGCONT", time.Since(start))
	if err := imapLogin(leader.Addr(leader.IMAPPort), users[0], 0); err != nil {
		t.Fatalf("login through the resumed director: %v", err)
	}
	if _, code := leader.api("directorAdd", map[string]any{"host": host, "vhostCount": "1"}); code != 0 {
		t.Fatalf("write through the resumed director: exit code %d", code)
	}
	for _, d := range ds {
		rows := d.mustAPI("directorRingStatus", nil)
		if len(rows) != 3 {
			t.Fatalf("ring on %s after healing: %v", d.IP, rows)
		}
	}
}
