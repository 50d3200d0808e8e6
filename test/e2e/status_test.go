package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestStatusPage renders /status in headless Chromium against usher with
// two Dovecot backends, mapped users, open sessions and a backend marked
// down, and checks it against the API's answers of the same moment.
func TestStatusPage(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 20})
	u := startUsher(t, cl, usherOpts{})
	// Users mapped to both backends, six of them with an open session, then one kicked.
	for i, user := range cl.Users()[:12] {
		c := loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), user)
		if i >= 6 {
			c.cmd(t, "b", "LOGOUT")
		}
	}
	kicked := cl.Users()[5]
	u.mustAPI("kick", map[string]any{"mask": []string{kicked}})
	down := cl.Backends()[1]
	u.mustAPI("directorDown", map[string]any{"host": down.IP.String()})
	waitFor(t, "five sessions", func() bool { return len(u.mustAPI("proxyList", nil)) == 5 })

	hosts := u.mustAPI("directorStatus", nil)
	ring := u.mustAPI("directorRingStatus", nil)
	url := fmt.Sprintf("http://doveadm:hellodoveadm@%s/status", u.Addr(u.APIPort))
	dom := testenv.Chromium(t, u.IP, u.APIPort, url, "--dump-dom")

	page := testenv.ParseStatusDOM(dom)
	got := page.Hosts
	if len(got) != len(hosts) {
		t.Fatalf("page shows %d backends, the API %d:\n%v\n%s", len(got), len(hosts), hosts, dom)
	}
	total := 0
	for _, h := range hosts {
		ip := fmt.Sprint(h["mail server ip"])
		state := "Up"
		if h["state"] == "down" {
			state = "Down"
		}
		if g := got[ip]; g[0] != state || g[2] != fmt.Sprint(h["users"]) {
			t.Errorf("backend %s: page shows %v, API %v", ip, got[ip], h)
		}
		n, _ := strconv.Atoi(fmt.Sprint(h["users"]))
		total += n
	}
	if total != 12 || got[down.IP.String()][0] != "Down" || got[down.IP.String()][1] != "admin" {
		t.Errorf("API: %d mapped users (want 12), page: %v", total, got)
	}
	members := page.Ring
	if len(members) != len(ring) || len(ring) != 1 {
		t.Fatalf("ring: page %v, API %v", members, ring)
	}
	if want := fmt.Sprintf("%v:%v", ring[0]["director ip"], ring[0]["port"]); members[0] != want {
		t.Errorf("ring member: page %q, API %q (%v)", members[0], want, ring[0])
	}
	if page.Leader != members[0] || page.Sessions != "5" {
		t.Errorf("page: leader %q (want %s), sessions %q (want 5)", page.Leader, members[0], page.Sessions)
	}
	if !strings.Contains(dom, "HOST-DOWN "+down.IP.String()) || !strings.Contains(dom, "kick "+kicked) {
		t.Errorf("the down event or the kick is not among the recent events")
	}

	// Without credentials: refused, to Chromium and to anyone.
	if dom := testenv.Chromium(t, u.IP, u.APIPort, fmt.Sprintf("http://%s/status", u.Addr(u.APIPort)), "--dump-dom"); strings.Contains(dom, "data-ip") {
		t.Errorf("unauthenticated page shows backends:\n%s", dom)
	}
	for _, pass := range []string{"", "wrong"} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/status", u.Addr(u.APIPort)), nil)
		if pass != "" {
			req.SetBasicAuth("doveadm", pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("password %q: status %d, want 401", pass, resp.StatusCode)
		}
	}
	// curl gets the plain-text page.
	text := run(t, "curl", "-sS", "--max-time", "30", "-u", "doveadm:hellodoveadm", fmt.Sprintf("http://%s/status", u.Addr(u.APIPort)))
	if !strings.HasPrefix(text, "usher status at ") || !strings.Contains(text, down.IP.String()) || strings.Contains(text, "<html") {
		t.Errorf("curl got:\n%s", text)
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	testenv.Chromium(t, u.IP, u.APIPort, url, "--screenshot="+shot, "--window-size=1100,900", "--hide-scrollbars")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot: %v", err)
	}
	// USHER_STATUS_SCREENSHOT=docs/status-page.png keeps it (how the one in docs/ was made).
	if keep := os.Getenv("USHER_STATUS_SCREENSHOT"); keep != "" {
		data, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatusPageShowsHealthVerdict: a backend that stops answering is put
// down by usher's health checks, and the plain-text page shows it down with
// the cause "health" and the verdict among the recent events.
func TestStatusPageShowsHealthVerdict(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 4})
	u := startUsher(t, cl, usherOpts{extra: "usher_health_check_interval = 200 msecs\nusher_health_check_timeout = 200 msecs\nusher_health_check_fall = 1\n"})
	dead := cl.Backends()[1]
	if err := dead.Stop(); err != nil {
		t.Fatal(err)
	}
	page := func() string {
		return run(t, "curl", "-sS", "--max-time", "30", "-u", "doveadm:hellodoveadm", fmt.Sprintf("http://%s/status", u.Addr(u.APIPort)))
	}
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dead.IP.String()) + `\s+-\s+Down\s+health\s+failing\s`)
	waitFor(t, "the health verdict on the status page", func() bool {
		p := page()
		return row.MatchString(p) && strings.Contains(p, "health checks: "+dead.IP.String()+" down")
	})
}
