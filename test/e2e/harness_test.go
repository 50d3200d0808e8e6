// Package e2e runs the usher binary in front of real Dovecot 2.3 backends
// and drives it with real clients (curl, mbsync, Python's imaplib) and its
// doveadm HTTP API. Everything listens on loopback only.
package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

var usherBin string

func TestMain(m *testing.M) { os.Exit(testenv.MainWithUsher(m, &usherBin, true)) }

// usher is one running usher process.
type usher struct {
	*testenv.Usher
	testenv.UsherPorts
	t   testing.TB
	Dir string
}

type usherOpts struct {
	extra string   // more config lines
	env   []string // more environment variables
}

// startUsher writes a config for a director in front of cl's backends and
// starts usher on a fresh loopback address next to them.
func startUsher(t testing.TB, cl *testenv.Cluster, o usherOpts) *usher {
	t.Helper()
	bs := cl.Backends()
	ip := bs[0].IP.As4()
	ip[3] = 10
	u := &usher{t: t, Dir: t.TempDir()}
	addr := netip.AddrFrom4(ip)
	u.UsherPorts = testenv.FreeUsherPorts(t, addr)
	var servers []string
	for _, b := range bs {
		servers = append(servers, b.IP.String())
	}
	certPath, keyPath, _, _, err := testenv.WriteCert(u.Dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	conf := testenv.UsherConf{IP: addr, Dir: u.Dir, Protocols: "imap pop3 lmtp sieve",
		Settings: fmt.Sprintf(`ssl = yes
ssl_cert = <%s
ssl_key = <%s
director_servers = %s:9090
director_mail_servers = %s
backend_imap_port = %d
backend_pop3_port = %d
backend_lmtp_port = %d
backend_sieve_port = %d
doveadm_password = hellodoveadm
doveadm_api_key = key
%s`, certPath, keyPath, addr, strings.Join(servers, " "), bs[0].IMAPPort, bs[0].POP3Port, bs[0].LMTPPort,
			bs[0].SievePort, o.extra),
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: u.IMAPPort}, {Name: "imaps", Port: u.IMAPS, SSL: true}}},
			{Name: "pop3-login", Inet: []testenv.Listener{{Name: "pop3", Port: u.POP3Port}, {Name: "pop3s"}}},
			testenv.Inet("lmtp", "lmtp", u.LMTPPort),
			testenv.Inet("managesieve-login", "sieve", u.Sieve),
			testenv.Inet("doveadm", "http", u.APIPort),
			testenv.Inet("usher", "metrics", u.Metrics),
			{Name: "director", Unix: []string{"director-admin"}, Inet: []testenv.Listener{{Name: "director-admin", Port: u.Admin}}},
		}}
	u.Usher = testenv.NewUsher(t, addr, usherBin, conf.Write(t))
	u.Env = o.env
	u.start()
	return u
}

// start runs usher until its API and IMAP listeners accept.
func (u *usher) start() {
	u.t.Helper()
	u.Start(u.t, u.Addr(u.APIPort), u.Addr(u.IMAPPort))
}

// api runs one doveadm command and returns its rows, or the exit code of an
// error element.
func (u *usher) api(cmd string, params map[string]any) ([]map[string]any, int) {
	u.t.Helper()
	rows, code, err := u.post("hellodoveadm", cmd, params)
	if err != nil {
		u.t.Fatal(err)
	}
	return rows, code
}

// apiAs runs a parameterless command with other credentials; code -1 means
// the request was not accepted (401 or a transport error).
func (u *usher) apiAs(user, pass, cmd string) ([]map[string]any, int) {
	rows, code, err := u.post(pass, cmd, nil)
	if err != nil {
		return nil, -1
	}
	return rows, code
}

func (u *usher) post(pass, cmd string, params map[string]any) ([]map[string]any, int, error) {
	return testenv.DoveadmCall("http://"+u.Addr(u.APIPort), pass, cmd, params)
}

// mustAPI is api that fails the test on a non-zero exit code.
func (u *usher) mustAPI(cmd string, params map[string]any) []map[string]any {
	u.t.Helper()
	rows, code := u.api(cmd, params)
	if code != 0 {
		u.t.Fatalf("%s %v: exit code %d", cmd, params, code)
	}
	return rows
}
