// Package ring runs three usher processes as one ring of directors in
// front of real Dovecot 2.3 backends, on loopback only, and checks what
// docs/cluster.md promises when directors die, stop and come back.
package ring

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

var usherBin string

// Without -race: three directors plus Dovecot share two cores, and the ring's
// code runs under the race detector in internal/ring already.
func TestMain(m *testing.M) { os.Exit(testenv.MainWithUsher(m, &usherBin, false)) }

// director is one usher process of the ring.
type director struct {
	*testenv.Usher
	testenv.UsherPorts
	t testing.TB
}

func (d *director) ringAddr() string { return d.Addr(d.RingPort) }

// startRing writes the configs of n directors in front of the backends
// named in mailServers (default: all of cl's) and starts them together, as
// a site's first start does.
func startRing(t testing.TB, cl *testenv.Cluster, n int, mailServers string) []*director {
	t.Helper()
	return startRingWith(t, cl, n, mailServers, "")
}

// startRingWith is startRing with extra settings added to every
// director's config.
func startRingWith(t testing.TB, cl *testenv.Cluster, n int, mailServers, extra string) []*director {
	t.Helper()
	bs := cl.Backends()
	if mailServers == "" {
		var ips []string
		for _, b := range bs {
			ips = append(ips, b.IP.String())
		}
		mailServers = strings.Join(ips, " ")
	}
	ds := make([]*director, n)
	var members []string
	for i := range ds {
		ip := bs[0].IP.As4()
		ip[3] = byte(21 + i)
		d := &director{t: t, Usher: &testenv.Usher{IP: netip.AddrFrom4(ip)}}
		d.UsherPorts = testenv.FreeUsherPorts(t, d.IP)
		members = append(members, d.ringAddr())
		ds[i] = d
	}
	for _, d := range ds {
		conf := testenv.UsherConf{IP: d.IP, Dir: t.TempDir(), Protocols: "imap lmtp",
			Settings: fmt.Sprintf(`ssl = no
director_servers = %s
director_mail_servers = %s
director_ring_secret = ring-test-secret
director_user_kick_delay = 1 secs
backend_imap_port = %d
backend_lmtp_port = %d
doveadm_password = hellodoveadm
%s`, strings.Join(members, " "), mailServers, bs[0].IMAPPort, bs[0].LMTPPort, extra),
			Services: []testenv.Service{
				{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: d.IMAPPort}, {Name: "imaps"}}},
				{Name: "pop3-login", Inet: []testenv.Listener{{Name: "pop3"}, {Name: "pop3s"}}},
				testenv.Inet("lmtp", "lmtp", d.LMTPPort),
				testenv.Inet("doveadm", "http", d.APIPort),
				testenv.Inet("director", "director-admin", d.Admin),
				testenv.Inet("usher", "metrics", d.Metrics),
			}}
		d.Usher = testenv.NewUsher(t, d.IP, usherBin, conf.Write(t))
	}
	for _, d := range ds {
		d.spawn()
	}
	for _, d := range ds {
		d.waitUp()
	}
	return ds
}

// spawn starts the process without waiting: directors that need each other
// for a quorum must be started together.
func (d *director) spawn() { d.t.Helper(); d.Spawn(d.t) }

// waitUp waits until the director's API and IMAP listeners accept.
func (d *director) waitUp() {
	d.t.Helper()
	d.WaitUp(d.t, d.Addr(d.APIPort), d.Addr(d.IMAPPort))
}

// api runs one doveadm command; code is the exit code of an error element,
// -1 when the request got no doveadm answer at all.
func (d *director) api(cmd string, params map[string]any) ([]map[string]any, int) {
	rows, code, err := testenv.DoveadmCall("http://"+d.Addr(d.APIPort), "hellodoveadm", cmd, params)
	if err != nil {
		return nil, -1
	}
	return rows, code
}

func (d *director) mustAPI(cmd string, params map[string]any) []map[string]any {
	d.t.Helper()
	rows, code := d.api(cmd, params)
	if code != 0 {
		d.t.Fatalf("%s on %s %v: exit code %d", cmd, d.IP, params, code)
	}
	return rows
}

// role is the director's own Raft role from DIRECTOR-LIST ("leader",
// "follower", ...), "" if it does not answer.
func (d *director) role() string {
	rows, code := d.api("directorRingStatus", nil)
	if code != 0 {
		return ""
	}
	for _, r := range rows {
		if r["type"] == "self" {
			st, _ := r["status"].(string)
			if _, role, ok := strings.Cut(st, ", "); ok {
				return role
			}
		}
	}
	return ""
}

// adminConn is a director-admin TCP connection after the handshake.
type adminConn struct {
	c net.Conn
	r *bufio.Reader
}

func (d *director) dialAdmin(t testing.TB) *adminConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", d.Addr(d.Admin), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := &adminConn{c: c, r: bufio.NewReader(c)}
	if _, err := a.r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "VERSION\tdirector-doveadm\t1\t0\n")
	return a
}

// lookupAll pipelines USER-LOOKUP for every user and returns each user's
// current backend ("" if unmapped).
func (a *adminConn) lookupAll(t testing.TB, users []string) []string {
	t.Helper()
	a.c.SetDeadline(time.Now().Add(2 * time.Minute))
	go func() {
		w := bufio.NewWriter(a.c)
		for _, u := range users {
			w.WriteString("USER-LOOKUP\t" + u + "\n")
		}
		w.Flush()
	}()
	out := make([]string, len(users))
	for i := range users {
		l, err := a.r.ReadString('\n')
		if err != nil {
			t.Fatalf("USER-LOOKUP %s: %v", users[i], err)
		}
		out[i], _, _ = strings.Cut(l, "\t")
	}
	return out
}
