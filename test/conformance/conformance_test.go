// Package conformance replays the doveadm HTTP API conformance scenario (the recorded
// behaviour of Dovecot 2.3.19's director, ../shared/conformance) against usher in front of two
// real Dovecot backends, and fails on any difference compare.py reports.
//
// The scenario needs fixed addresses: usher at 127.0.0.10 and the backends at 127.0.0.11 and
// 127.0.0.12, because the golden user->backend choices hash those IPs. Nothing else in the test
// suite uses them (testenv picks 127.X.Y.Z with X != 0 by default).
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

const (
	usherIP  = "127.0.0.10"
	imapPort = 21143
	apiPort  = 21080
	ringPort = 21090
	nUsers   = 100
)

// scenarioPorts are the anchor deployment's ports, which the scenario's defaults expect.
var scenarioPorts = testenv.Ports{IMAP: imapPort, POP3: 21110, LMTP: 21024, Sieve: 21190, HTTP: apiPort, Doveadm: 21081}

// timingDependent are golden answers that hold only with Dovecot's timing, which usher does not
// reproduce on purpose.
var timingDependent = map[int]string{
	256: "directorRingStatus after 251-255: Dovecot blocked ~20 s in 252 (README, Timing), long " +
		"enough to forget 127.0.0.14 removed at 251; usher answers at once and still lists it as removed",
}

// nullAsAbsent are golden cases where Dovecot 2.3 died on a JSON null (strcmp on NULL for a
// boolean), which compare.py's usher rule answers with an in-band usage error; usher treats
// a null as a parameter left out for every type (docs/api.md), so it must answer what the
// same request without the parameter answers: here `who`'s rows.
var nullAsAbsent = map[int]string{103: `[["who", {"separateConnections": null}, "tag1"]]`}

// sharedDir finds the shared conformance material ($USHER_SHARED, else ../shared beside the
// clone, CI's layout); missing, it fails the run under `make test` and CI.
func sharedDir(t *testing.T) string {
	return testenv.SharedDir(t, "conformance/scenario.py")
}

func TestDoveadmAPIConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance scenario takes about two minutes")
	}
	shared := sharedDir(t)
	testenv.RequireDovecot(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: the scenario and compare.py need it")
	}
	for _, addr := range []string{"127.0.0.10:21080", "127.0.0.11:21143", "127.0.0.12:21143"} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Skipf("%s is already in use (an anchor deployment? ../shared/anchor/teardown.sh stops it)", addr)
		}
	}

	cl := testenv.StartDovecot(t, testenv.Options{
		N: 2, Users: nUsers, Password: "pass", DoveadmPassword: "hellodoveadm", APIKey: "key",
		IPs:   []netip.Addr{netip.MustParseAddr("127.0.0.11"), netip.MustParseAddr("127.0.0.12")},
		Ports: scenarioPorts,
	})
	for _, b := range cl.Backends() {
		if err := b.AddConfig(anchorMetric); err != nil {
			t.Fatal(err)
		}
	}
	startUsher(t)

	out := filepath.Join(t.TempDir(), "results")
	conf := filepath.Join(shared, "conformance")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	scenario := exec.CommandContext(ctx, "python3", filepath.Join(conf, "scenario.py"),
		"--api", "http://"+usherIP+":"+strconv.Itoa(apiPort), "--director-ip", usherIP,
		"--imap-port", strconv.Itoa(imapPort), "--ring-port", strconv.Itoa(ringPort),
		"--backend-ips", "127.0.0.11,127.0.0.12", "--password", "hellodoveadm", "--api-key", "key",
		"--pace", "0", "--out", out)
	if b, err := scenario.CombinedOutput(); err != nil {
		t.Fatalf("scenario.py: %v\n%s", err, b)
	}

	director, backend := casesByTarget(t, filepath.Join(conf, "cases"))
	director = slices.DeleteFunc(director, func(n int) bool {
		_, timing := timingDependent[n]
		_, null := nullAsAbsent[n]
		return timing || null
	})
	for n, why := range timingDependent {
		t.Logf("case %d not compared: %s", n, why)
	}
	checkNullAsAbsent(t, out)
	// Cases sent to a backend's own API exercise real Dovecot 2.3, bugs included, so they are
	// compared as recorded; usher's deviation rules apply to the director's answers only.
	compare(t, conf, out, "usher", director)
	compare(t, conf, out, "dovecot", backend)
}

// checkNullAsAbsent checks the answers of the nullAsAbsent cases: a `who` response, not an
// error element.
func checkNullAsAbsent(t *testing.T, out string) {
	t.Helper()
	for n, body := range nullAsAbsent {
		files, _ := filepath.Glob(filepath.Join(out, fmt.Sprintf("%03d_*.json", n)))
		if len(files) != 1 {
			t.Errorf("case %d: no result", n)
			continue
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Request struct {
				Body string `json:"body"`
			} `json:"request"`
			Response struct {
				Status *int   `json:"status"`
				Body   string `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("%s: %v", files[0], err)
		}
		if r.Request.Body != body {
			t.Errorf("case %d sent %s, expected %s", n, r.Request.Body, body)
		}
		if r.Response.Status == nil || *r.Response.Status != 200 || !strings.HasPrefix(r.Response.Body, `[["doveadmResponse",`) {
			t.Errorf("case %d (null treated as absent): got %v %s", n, r.Response.Status, r.Response.Body)
		}
	}
}

// anchorMetric is the fourth metric of the anchor backends (../shared/anchor/setup.sh), which
// the golden statsDump of b1 (case 274) lists; testenv's backend config defines the other three.
const anchorMetric = `
metric proxy_session_finished {
  filter = event=proxy_session_finished
}
`

// casesByTarget splits the golden case numbers into those answered by the director and those
// sent to a backend's API.
func casesByTarget(t *testing.T, dir string) (director, backend []int) {
	files, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9][0-9]_*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases in %s: %v", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Seq    int    `json:"seq"`
			Target string `json:"target"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if strings.HasPrefix(c.Target, usherIP+":") {
			director = append(director, c.Seq)
		} else {
			backend = append(backend, c.Seq)
		}
	}
	sort.Ints(director)
	sort.Ints(backend)
	return director, backend
}

func compare(t *testing.T, conf, out, target string, cases []int) {
	t.Helper()
	if len(cases) == 0 {
		return
	}
	list := make([]string, len(cases))
	for i, n := range cases {
		list[i] = strconv.Itoa(n)
	}
	cmd := exec.Command("python3", filepath.Join(conf, "compare.py"), out, "--target", target,
		"--cases", strings.Join(list, ","))
	b, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	summary := lines[len(lines)-1]
	t.Logf("compare.py --target %s (%d cases): %s", target, len(cases), summary)
	if err != nil {
		var failed []string
		for _, l := range lines {
			if !strings.HasPrefix(l, "PASS ") {
				failed = append(failed, l)
			}
		}
		t.Errorf("compare.py --target %s: %v\n%s", target, err, strings.Join(failed, "\n"))
	}
}

// startUsher builds usher and runs it at 127.0.0.10 configured like the reference director:
// the two backends, a ring of one, director_user_expire = 15 min, and a passdb that checks
// passwords itself so wrong ones never reach a backend.
func startUsher(t *testing.T) {
	bin, cleanup, err := testenv.BuildUsher(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	dir := t.TempDir()
	var users strings.Builder
	for i := 1; i <= nUsers; i++ {
		fmt.Fprintf(&users, "%s:{PLAIN}pass::::::proxy=y\n", testenv.UserName(i))
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The scenario's last case stops usher; the cleanup stops it otherwise.
	u := testenv.NewUsher(t, netip.MustParseAddr(usherIP), bin, usherConf(dir).Write(t))
	u.Start(t, u.Addr(apiPort), u.Addr(imapPort))
}

func usherConf(dir string) testenv.UsherConf {
	return testenv.UsherConf{IP: netip.MustParseAddr(usherIP), Dir: dir, Protocols: "imap",
		Comment: "usher configured like the conformance corpus's reference director",
		Settings: fmt.Sprintf(`ssl = no
disable_plaintext_auth = no
auth_username_format = %%Ln
director_servers = %[1]s:%[2]d
director_mail_servers = 127.0.0.11 127.0.0.12
director_user_expire = 15 min
backend_imap_port = %[3]d
# The reference director ran without a monitor; the scenario's extra hosts
# (127.0.0.13-15) have no server, and checks would put them down.
usher_health_check = none
doveadm_password = hellodoveadm
doveadm_api_key = key
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[4]s/users
}`, usherIP, ringPort, imapPort, dir),
		Services: []testenv.Service{
			testenv.Inet("imap-login", "imap", imapPort),
			testenv.Inet("doveadm", "http", apiPort),
			{Name: "director", Inet: []testenv.Listener{{Port: ringPort}}, Unix: []string{"director-admin"}},
		}}
}
