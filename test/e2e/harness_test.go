// Package e2e runs the usher binary in front of real Dovecot 2.3 backends
// and drives it with real clients (curl, mbsync, Python's imaplib) and its
// doveadm HTTP API. Everything listens on loopback only.
package e2e

import (
	"fmt"
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
	bin, cleanup, err := testenv.BuildUsher(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	usherBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// usher is one running usher process.
type usher struct {
	t        testing.TB
	IP       netip.Addr
	IMAPPort int
	IMAPS    int
	POP3Port int
	LMTPPort int
	Sieve    int
	APIPort  int
	Admin    int
	Metrics  int
	Dir      string
	conf     string
	log      *testenv.LogBuffer
	env      []string // added to the process's environment

	mu  sync.Mutex
	cmd *exec.Cmd
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
	u := &usher{t: t, IP: netip.AddrFrom4(ip), Dir: t.TempDir(), log: &testenv.LogBuffer{}, env: o.env}
	u.IMAPPort = testenv.FreePort(t, u.IP)
	u.IMAPS = testenv.FreePort(t, u.IP)
	u.POP3Port = testenv.FreePort(t, u.IP)
	u.LMTPPort = testenv.FreePort(t, u.IP)
	u.Sieve = testenv.FreePort(t, u.IP)
	u.APIPort = testenv.FreePort(t, u.IP)
	u.Admin = testenv.FreePort(t, u.IP)
	u.Metrics = testenv.FreePort(t, u.IP)
	var servers []string
	for _, b := range bs {
		servers = append(servers, b.IP.String())
	}
	cert, key := certFor(t, u.IP)
	os.WriteFile(filepath.Join(u.Dir, "cert.pem"), cert, 0o600)
	os.WriteFile(filepath.Join(u.Dir, "key.pem"), key, 0o600)
	conf := fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap pop3 lmtp sieve
ssl = yes
ssl_cert = <%[2]s/cert.pem
ssl_key = <%[2]s/key.pem
director_servers = %[1]s:9090
director_mail_servers = %[3]s
backend_imap_port = %[4]d
backend_pop3_port = %[10]d
backend_lmtp_port = %[11]d
backend_sieve_port = %[12]d
doveadm_password = hellodoveadm
doveadm_api_key = key
%[9]s
service imap-login {
  inet_listener imap {
    port = %[5]d
  }
  inet_listener imaps {
    port = %[6]d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = %[13]d
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    port = %[14]d
  }
}
service managesieve-login {
  inet_listener sieve {
    port = %[15]d
  }
}
service doveadm {
  inet_listener http {
    port = %[7]d
  }
}
service usher {
  inet_listener metrics {
    port = %[16]d
  }
}
service director {
  unix_listener director-admin {
  }
  inet_listener director-admin {
    port = %[8]d
  }
}
`, u.IP, u.Dir, strings.Join(servers, " "), bs[0].IMAPPort, u.IMAPPort, u.IMAPS, u.APIPort, u.Admin, o.extra,
		bs[0].POP3Port, bs[0].LMTPPort, bs[0].SievePort, u.POP3Port, u.LMTPPort, u.Sieve, u.Metrics)
	u.conf = filepath.Join(u.Dir, "usher.conf")
	if err := os.WriteFile(u.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	u.start()
	t.Cleanup(func() {
		u.stop()
		if t.Failed() {
			t.Logf("usher log:\n%s", u.log.String())
		}
	})
	return u
}

func (u *usher) start() {
	u.t.Helper()
	cmd := exec.Command(usherBin, "serve", "-c", u.conf)
	cmd.Stdout, cmd.Stderr = u.log, u.log
	cmd.Env = append(os.Environ(), u.env...)
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	u.mu.Lock()
	u.cmd = cmd
	u.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", u.addr(u.APIPort)); err == nil {
			c.Close()
			if c2, err := net.Dial("tcp", u.addr(u.IMAPPort)); err == nil {
				c2.Close()
				return
			}
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			u.t.Fatalf("usher did not start:\n%s", u.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (u *usher) stop() int {
	u.mu.Lock()
	cmd := u.cmd
	u.cmd = nil
	u.mu.Unlock()
	if cmd == nil {
		return -1
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return cmd.ProcessState.ExitCode()
}

// kill9 kills usher without any chance to clean up.
func (u *usher) kill9() {
	u.mu.Lock()
	cmd := u.cmd
	u.cmd = nil
	u.mu.Unlock()
	cmd.Process.Kill()
	cmd.Wait()
}

func (u *usher) addr(port int) string { return net.JoinHostPort(u.IP.String(), strconv.Itoa(port)) }

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
	return testenv.DoveadmCall("http://"+u.addr(u.APIPort), pass, cmd, params)
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
