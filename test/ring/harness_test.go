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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

var usherBin string

func TestMain(m *testing.M) {
	// Without -race: three directors plus Dovecot share two cores, and the
	// ring's code runs under the race detector in internal/ring already.
	bin, cleanup, err := testenv.BuildUsher(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	usherBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// director is one usher process of the ring.
type director struct {
	t        testing.TB
	IP       netip.Addr
	RingPort int
	IMAPPort int
	LMTPPort int
	APIPort  int
	Admin    int
	Metrics  int
	conf     string
	log      *testenv.LogBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (d *director) ringAddr() string { return d.addr(d.RingPort) }
func (d *director) addr(port int) string {
	return net.JoinHostPort(d.IP.String(), strconv.Itoa(port))
}

// startRing writes the configs of n directors in front of the backends
// named in mailServers (default: all of cl's) and starts them together, as
// a site's first start does.
func startRing(t testing.TB, cl *testenv.Cluster, n int, mailServers string) []*director {
	t.Helper()
	return startRingWith(t, cl, n, mailServers, "")
}

// startRingWith is startRing with extra settings appended to every
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
		d := &director{t: t, IP: netip.AddrFrom4(ip), log: &testenv.LogBuffer{}}
		d.RingPort = testenv.FreePort(t, d.IP)
		d.IMAPPort = testenv.FreePort(t, d.IP)
		d.LMTPPort = testenv.FreePort(t, d.IP)
		d.APIPort = testenv.FreePort(t, d.IP)
		d.Admin = testenv.FreePort(t, d.IP)
		d.Metrics = testenv.FreePort(t, d.IP)
		members = append(members, d.ringAddr())
		ds[i] = d
	}
	for _, d := range ds {
		dir := t.TempDir()
		conf := fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap lmtp
ssl = no
director_servers = %[3]s
director_mail_servers = %[4]s
director_ring_secret = ring-test-secret
director_user_kick_delay = 1 secs
backend_imap_port = %[5]d
backend_lmtp_port = %[6]d
doveadm_password = hellodoveadm
service imap-login {
  inet_listener imap {
    port = %[7]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    port = %[8]d
  }
}
service doveadm {
  inet_listener http {
    port = %[9]d
  }
}
service director {
  inet_listener director-admin {
    port = %[10]d
  }
}
service usher {
  inet_listener metrics {
    port = %[11]d
  }
}
%[12]s
`, d.IP, dir, strings.Join(members, " "), mailServers, bs[0].IMAPPort, bs[0].LMTPPort,
			d.IMAPPort, d.LMTPPort, d.APIPort, d.Admin, d.Metrics, extra)
		d.conf = filepath.Join(dir, "usher.conf")
		if err := os.WriteFile(d.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			d.stop()
			if t.Failed() {
				t.Logf("director %s log:\n%s", d.IP, d.log.String())
			}
		})
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
func (d *director) spawn() {
	d.t.Helper()
	cmd := exec.Command(usherBin, "serve", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.cmd = cmd
	d.mu.Unlock()
}

// waitUp waits until the director's API and IMAP listeners accept.
func (d *director) waitUp() {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", d.addr(d.APIPort)); err == nil {
			c.Close()
			if c2, err := net.Dial("tcp", d.addr(d.IMAPPort)); err == nil {
				c2.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("director %s did not start:\n%s", d.IP, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *director) signal(sig syscall.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		d.cmd.Process.Signal(sig)
	}
}

// stop ends the process with SIGTERM (after SIGCONT, should it be stopped).
func (d *director) stop() {
	d.mu.Lock()
	cmd := d.cmd
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// kill9 kills the director without any chance to clean up.
func (d *director) kill9() {
	d.mu.Lock()
	cmd := d.cmd
	d.cmd = nil
	d.mu.Unlock()
	cmd.Process.Kill()
	cmd.Wait()
}

// api runs one doveadm command; code is the exit code of an error element,
// -1 when the request got no doveadm answer at all.
func (d *director) api(cmd string, params map[string]any) ([]map[string]any, int) {
	rows, code, err := testenv.DoveadmCall("http://"+d.addr(d.APIPort), "hellodoveadm", cmd, params)
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
	c, err := net.DialTimeout("tcp", d.addr(d.Admin), 10*time.Second)
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
