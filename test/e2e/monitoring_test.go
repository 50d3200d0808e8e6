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
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// scrape returns the metric names /metrics exports: the names of its # TYPE
// lines, with _sum, _count and _bucket for histograms and summaries.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		exported[f[2]] = true
		if f[3] == "histogram" || f[3] == "summary" {
			for _, suffix := range []string{"_sum", "_count", "_bucket"} {
				exported[f[2]+suffix] = true
			}
		}
	}
	if len(exported) == 0 {
		t.Fatal("no metrics scraped")
	}
	return exported
}

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
// open, a failed login behind it, a backend failing its health checks) and
// checks that the Grafana dashboard, the alerting rules in dist/ and
// docs/monitoring.md name only metrics it exports; then promtool checks the
// rules and runs their unit tests.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 4})
	u := startUsher(t, cl, usherOpts{extra: "usher_health_check_interval = 200 msecs\nusher_health_check_timeout = 200 msecs\n"})
	bad := dialFrom(t, netip.Addr{}, u.Addr(u.IMAPPort))
	if _, tagged := bad.cmd(t, "a", "LOGIN user001 wrong"); !strings.HasPrefix(tagged, "a NO") {
		t.Fatalf("bad login: %q", tagged)
	}
	loginIMAP(t, netip.Addr{}, u.Addr(u.IMAPPort), "user002")

	// The other backend stops: its checks fail from now on, the session stays.
	if err := otherBackend(cl, backendOf(t, u, cl, "user002")).Stop(); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join("..", "..", "dist")
	rules := filepath.Join(dist, "prometheus", "usher-alerts.yml")
	files := []string{filepath.Join(dist, "grafana", "usher-dashboard.json"), rules, filepath.Join("..", "..", "docs", "monitoring.md")}
	// Series of counters with labels appear with their first event (a check, a
	// failed check): wait for every name until the deadline, then report.
	var missing []string
	allExported := func() bool {
		exported := scrape(t, "http://"+u.Addr(u.Metrics)+"/metrics")
		missing = nil
		for _, file := range files {
			names := referenced(t, file)
			if len(names) < 5 {
				t.Fatalf("%s names only %v", file, names)
			}
			for _, n := range names {
				if !exported[n] {
					missing = append(missing, file+": "+n)
				}
			}
		}
		return len(missing) == 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for !allExported() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	for _, m := range missing {
		t.Errorf("%s is not exported by usher", m)
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
