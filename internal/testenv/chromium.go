package testenv

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Chromium runs Debian's chromium headless on url (args such as
// --dump-dom or --screenshot=FILE come before it) and returns what it
// printed. It can reach nothing but ip: every other name and address
// resolves to nothing, and its background services are off. port is allowed
// explicitly, since a random port may be on Chromium's list of unsafe ones
// (10080 is). Without chromium the test fails under USHER_REQUIRE_DOVECOT=1
// (make test installs it) and is skipped otherwise.
func Chromium(t testing.TB, ip netip.Addr, port int, url string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal("chromium not found (scripts/test-deps.sh installs Debian's chromium)")
		}
		t.Skip("chromium not found")
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--user-data-dir=" + t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + ip.String(),
		"--explicitly-allowed-ports=" + strconv.Itoa(port)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr LogBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// StatusDOM is what a test reads back from usher's status page as Chromium
// rendered it (internal/status/page.html marks the rows with data-ip and
// data-addr).
type StatusDOM struct {
	Leader   string
	Sessions string
	Ring     []string             // ring members, ip:port
	Hosts    map[string][3]string // backend ip -> state (Up, Down), cause (admin, health, ""), mapped users
}

var (
	statusHost     = regexp.MustCompile(`<tr data-ip="([^"]+)">.*?<span class="state [a-z]+">([A-Za-z]+)</span>.*?<td class="cause">([a-z]*)</td>.*?<td class="num users">(\d+)</td>`)
	statusRing     = regexp.MustCompile(`<tr data-addr="([^"]+)">`)
	statusLeader   = regexp.MustCompile(`id="leader">([^<]+)<`)
	statusSessions = regexp.MustCompile(`id="sessions">(\d+)<`)
)

// ParseStatusDOM reads a dumped status page.
func ParseStatusDOM(dom string) StatusDOM {
	s := StatusDOM{Hosts: map[string][3]string{}}
	for _, m := range statusHost.FindAllStringSubmatch(dom, -1) {
		s.Hosts[m[1]] = [3]string{m[2], m[3], m[4]}
	}
	for _, m := range statusRing.FindAllStringSubmatch(dom, -1) {
		s.Ring = append(s.Ring, m[1])
	}
	if m := statusLeader.FindStringSubmatch(dom); m != nil {
		s.Leader = m[1]
	}
	if m := statusSessions.FindStringSubmatch(dom); m != nil {
		s.Sessions = m[1]
	}
	return s
}
