package ring

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// Health checks in a ring of three: fast settings so that the test takes
// seconds. Dovecot logs every probe as a connection without login, with the
// director's ring address as rip (probes are sent from it).
const healthConf = `usher_health_check = imap
usher_health_check_interval = 1 secs
usher_health_check_timeout = 1 secs
usher_health_check_fall = 3
usher_health_check_rise = 2
director_max_parallel_moves = 40
`

const (
	hcInterval = time.Second
	hcFall     = 3
	hcRise     = 2
)

// healthRow is ip's row of usherDirectorHealth on d; nil if d does not answer.
func healthRow(d *director, ip string) map[string]any {
	rows, code := d.api("usherDirectorHealth", nil)
	if code != 0 {
		return nil
	}
	for _, r := range rows {
		if r["mail server ip"] == ip {
			return r
		}
	}
	return nil
}

func rowIs(r map[string]any, state, cause string) bool {
	return r != nil && r["state"] == state && r["cause"] == cause
}

// waitEvery polls until every director shows ip in state with cause, and
// returns how long that took.
func waitEvery(t *testing.T, ds []*director, ip, state, cause string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		all := true
		for _, d := range ds {
			if !rowIs(healthRow(d, ip), state, cause) {
				all = false
				break
			}
		}
		if all {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			for _, d := range ds {
				t.Logf("%s: %v", d.IP, healthRow(d, ip))
			}
			t.Fatalf("%s not %s (%s) on every director after %v", ip, state, cause, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probeLog reads a backend's log from an offset and counts probe
// connections per director.
type probeLog struct {
	path string
	off  int64
}

func (p *probeLog) mark() {
	st, err := os.Stat(p.path)
	if err == nil {
		p.off = st.Size()
	}
}

func (p *probeLog) count(ds []*director) map[string]int {
	out := map[string]int{}
	f, err := os.Open(p.path)
	if err != nil {
		return out
	}
	defer f.Close()
	f.Seek(p.off, io.SeekStart)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, d := range ds {
			if strings.Contains(sc.Text(), "imap-login:") && strings.Contains(sc.Text(), "rip="+d.IP.String()+",") {
				out[d.IP.String()]++
			}
		}
	}
	return out
}

// waitProbes waits until the log shows at least n probes since the mark
// and returns the counts per director.
func (p *probeLog) waitProbes(t *testing.T, ds []*director, n int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := p.count(ds)
		total := 0
		for _, v := range c {
			total += v
		}
		if total >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %v probes in %s", c, p.path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns d's /metrics ("" if it does not answer).
func scrape(t *testing.T, d *director) string {
	resp, err := http.Get("http://" + d.Addr(d.Metrics) + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric reads one sample from d's /metrics (0 if absent).
func metric(t *testing.T, d *director, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(scrape(t, d)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

// waitMetric waits until the leader's counter has grown by at least n.
func waitMetric(t *testing.T, d *director, series string, n float64) {
	t.Helper()
	start := metric(t, d, series)
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, d, series) < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not grow by %v", series, d.IP, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lookupOn(t *testing.T, d *director, users []string) []string {
	a := d.dialAdmin(t)
	defer a.c.Close()
	return a.lookupAll(t, users)
}

// TestHealthChecks covers issue 15's health-check points in one ring of
// three in front of two real Dovecot backends: one checker, a killed
// backend marked down everywhere and its users moved, recovery without
// moving back, admin decisions over the checks, and takeover by another
// director when the checking one is SIGKILLed.
func TestHealthChecks(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 60})
	bs := cl.Backends()
	b1, b2 := bs[0], bs[1]
	ip1, ip2 := b1.IP.String(), b2.IP.String()
	ds := startRingWith(t, cl, 3, "", healthConf)
	leader := waitLeader(t, ds)
	waitEvery(t, ds, ip1, "up", "", 30*time.Second)

	// One checker: every probe of both backends comes from the leader.
	logs := []*probeLog{{path: b1.LogPath}, {path: b2.LogPath}}
	for _, l := range logs {
		l.waitProbes(t, ds, 1) // the checker has started
		l.mark()
	}
	for i, l := range logs {
		c := l.waitProbes(t, ds, 3)
		if len(c) != 1 || c[leader.IP.String()] == 0 {
			t.Fatalf("probes of %s came from %v; the leader is %s", bs[i].Name, c, leader.IP)
		}
	}
	t.Logf("one checker: probes only from the leader %s", leader.IP)

	// Map users; find those on b1.
	users := cl.Users()
	mapUsers(t, ds, users)
	var onB1 []string
	for i, h := range lookupOn(t, ds[0], users) {
		if h == ip1 {
			onB1 = append(onB1, users[i])
		}
	}
	if len(onB1) == 0 {
		t.Fatal("no user mapped to b1")
	}

	// A killed backend is down on every director within interval x fall + 2 s.
	b1.Kill()
	killed := time.Now()
	waitEvery(t, ds, ip1, "down", "health", 30*time.Second)
	t.Logf("killed backend down (health) on all three directors after %v (bound interval x fall + 2 s = %v)",
		time.Since(killed).Round(10*time.Millisecond), hcInterval*hcFall+2*time.Second)
	// Its users are moved off, and their next logins land on b2.
	deadline := time.Now().Add(30 * time.Second)
	for {
		moved := true
		for _, d := range ds {
			for i, h := range lookupOn(t, d, onB1) {
				if h != ip2 {
					moved = false
					if time.Now().After(deadline) {
						t.Fatalf("%s still on %q on %s", onB1[i], h, d.IP)
					}
				}
			}
		}
		if moved {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := imapLogin(ds[2].Addr(ds[2].IMAPPort), onB1[0], 0); err != nil {
		t.Fatalf("login of %s after its backend died: %v", onB1[0], err)
	}

	// An admin's directorUp while the checks fail holds the backend up.
	ds[0].mustAPI("directorUp", map[string]any{"host": ip1})
	waitMetric(t, leader, `usher_health_check_failures_total{backend="`+ip1+`"}`, hcFall)
	for _, d := range ds {
		if r := healthRow(d, ip1); !rowIs(r, "up", "admin") || r["admin-hold"] != "yes" || r["checks"] != "failing" {
			t.Fatalf("admin's up not respected on %s: %v", d.IP, r)
		}
	}

	// Restarted: up after rise passing checks (the hold ends), users stay on b2.
	restarted := time.Now()
	if err := b1.Start(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for r := healthRow(ds[1], ip1); r == nil || r["checks"] != "passing" || r["admin-hold"] != "no"; r = healthRow(ds[1], ip1) {
		if time.Now().After(deadline) {
			t.Fatalf("checks never passed after the restart: %v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("restarted backend passing again %v after its start began (rise %d x %v)", time.Since(restarted).Round(10*time.Millisecond), hcRise, hcInterval)
	for i, h := range lookupOn(t, ds[1], onB1) {
		if h != ip2 {
			t.Errorf("%s moved back to %q after recovery", onB1[i], h)
		}
	}

	// The checks fail anew: now they put it down.
	b1.Kill()
	waitEvery(t, ds, ip1, "down", "health", 30*time.Second)
	recovered := time.Now()
	if err := b1.Start(); err != nil {
		t.Fatal(err)
	}
	waitEvery(t, ds, ip1, "up", "health", 30*time.Second)
	t.Logf("backend down by the checks up again on every director %v after its start began", time.Since(recovered).Round(10*time.Millisecond))

	// An admin's directorDown survives passing checks.
	ds[2].mustAPI("directorDown", map[string]any{"host": ip1})
	waitEvery(t, ds, ip1, "down", "admin", 10*time.Second)
	logs[0].mark()
	logs[0].waitProbes(t, ds, hcRise+1)
	for _, d := range ds {
		if r := healthRow(d, ip1); !rowIs(r, "down", "admin") || r["checks"] != "passing" {
			t.Fatalf("admin's down overridden on %s: %v", d.IP, r)
		}
	}
	ds[2].mustAPI("directorUp", map[string]any{"host": ip1})
	waitEvery(t, ds, ip1, "up", "admin", 10*time.Second)

	// SIGKILL of the checking director: another takes over.
	var rest []*director
	for _, d := range ds {
		if d != leader {
			rest = append(rest, d)
		}
	}
	logs[1].mark()
	leader.Kill()
	killed = time.Now()
	deadline = killed.Add(30 * time.Second)
	for {
		c := logs[1].count(rest)
		if len(c) > 0 {
			t.Logf("probes from %v %v after SIGKILL of the checking director (2 intervals = %v)",
				c, time.Since(killed).Round(10*time.Millisecond), 2*hcInterval)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no director took over the checks")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
