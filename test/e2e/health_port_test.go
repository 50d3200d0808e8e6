package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// healthMetric reads usher's /metrics counter name{backend="ip"} (0 when absent); ok is
// false when /metrics cannot be read yet.
func healthMetric(u *usher, name, ip string) (n int, ok bool) {
	resp, err := http.Get("http://" + u.Addr(u.Metrics) + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	prefix := name + `{backend="` + ip + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, found := strings.CutPrefix(line, prefix); found {
			n, _ = strconv.Atoi(v)
		}
	}
	return n, true
}

// waitHealthRounds waits until usher's checker has checked every backend of cl at least n
// times (usher_health_checks_total on /metrics).
func waitHealthRounds(t *testing.T, u *usher, cl *testenv.Cluster, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d health checks of every backend", n), func() bool {
		for _, b := range cl.Backends() {
			if got, ok := healthMetric(u, "usher_health_checks_total", b.IP.String()); !ok || got < n {
				return false
			}
		}
		return true
	})
}

// hostDown reports whether directorStatus shows the backend down.
func hostDown(u *usher, ip string) bool {
	for _, h := range u.mustAPI("directorStatus", nil) {
		if h["mail server ip"] == ip {
			return h["state"] == "down"
		}
	}
	return false
}

// TestHealthLearnsLoginPort: the passdb sends logins to the backends' real port, but not as
// one port for every answer (a second passdb disagrees), and backend_imap_port is where
// nothing listens. The checks there never pass: no backend is put down, and the log says
// which port to fix. A login proxied to one backend teaches that host's checks the port:
// they pass there, and when that backend's Dovecot stops the checks put it down; the other
// backend, never checked successfully, stays up.
func TestHealthLearnsLoginPort(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 6})
	real := cl.Backends()[0].IMAPPort
	var users strings.Builder
	for _, name := range cl.Users() {
		fmt.Fprintf(&users, "%s:{PLAIN}pass::::::proxy=y port=%d\n", name, real)
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(users.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	u := startUsher(t, cl, usherOpts{extra: "backend_imap_port = 9\n" +
		"usher_health_check_interval = 300 msecs\nusher_health_check_fall = 2\nusher_health_check_rise = 1\n" +
		"passdb {\n  driver = passwd-file\n  args = " + path + "\n}\n" +
		"passdb {\n  driver = static\n  args = password=other proxy=y port=9\n}\n"})

	waitHealthRounds(t, u, cl, 3) // fall+1
	for _, b := range cl.Backends() {
		if hostDown(u, b.IP.String()) {
			t.Fatalf("backend %s put down by checks on backend_imap_port, where logins never go", b.IP)
		}
		if want := fmt.Sprintf("backend=%s port=9", b.IP); !strings.Contains(u.Log.String(), want) {
			t.Errorf("no warning naming %s", want)
		}
	}

	users2, where := usersOnBothBackends(t, u, cl, 2)
	learned, other := where[users2[0]], where[users2[1]]
	loginIMAP(t, clientIP(u, 40), u.Addr(u.IMAPPort), users2[0])
	waitFor(t, "a passed check of "+learned.Name, func() bool {
		checks, _ := healthMetric(u, "usher_health_checks_total", learned.IP.String())
		failed, _ := healthMetric(u, "usher_health_check_failures_total", learned.IP.String())
		return checks > failed
	})
	if err := learned.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, learned.Name+" down by the checks", func() bool { return hostDown(u, learned.IP.String()) })
	if hostDown(u, other.IP.String()) {
		t.Errorf("%s, never checked on its login port, was put down", other.Name)
	}
}
