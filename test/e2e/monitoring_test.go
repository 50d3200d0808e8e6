package e2e

import (
	"bufio"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

var metricName = regexp.MustCompile(`\busher_[a-z0-9_]+`)

// referenced lists the usher_* metric names a file mentions.
func referenced(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	names := metricName.FindAllString(string(data), -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// TestDashboardAndAlertsUseExportedMetrics scrapes a running usher (a session
// open, a failed login behind it) and checks that the Grafana dashboard and
// the alerting rules in dist/ name only metrics it exports; then promtool
// checks the rules and runs their unit tests.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 4})
	u := startUsher(t, cl, usherOpts{})
	bad := dialFrom(t, netip.Addr{}, u.addr(u.IMAPPort))
	if _, tagged := bad.cmd(t, "a", "LOGIN user001 wrong"); !strings.HasPrefix(tagged, "a NO") {
		t.Fatalf("bad login: %q", tagged)
	}
	c := dialFrom(t, netip.Addr{}, u.addr(u.IMAPPort))
	if _, tagged := c.cmd(t, "a", "LOGIN user002 pass"); !strings.HasPrefix(tagged, "a OK") {
		t.Fatalf("login: %q", tagged)
	}

	resp, err := http.Get("http://" + u.addr(u.Metrics) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}
	if len(exported) == 0 {
		t.Fatal("no metrics scraped")
	}
	dist := filepath.Join("..", "..", "dist")
	rules := filepath.Join(dist, "prometheus", "usher-alerts.yml")
	for _, file := range []string{filepath.Join(dist, "grafana", "usher-dashboard.json"), rules, filepath.Join("..", "..", "docs", "monitoring.md")} {
		names := referenced(t, file)
		if len(names) < 5 {
			t.Fatalf("%s names only %v", file, names)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s uses %s, which usher does not export", file, n)
			}
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(testenv.RequireEnv) == "1" {
			t.Fatal("promtool not found (scripts/test-deps.sh installs Debian's prometheus)")
		}
		t.Skip("promtool not found")
	}
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", filepath.Join(dist, "prometheus", "usher-alerts.test.yml")}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
