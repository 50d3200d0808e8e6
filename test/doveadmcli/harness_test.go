// Package doveadmcli drives usher's director-admin TCP socket with Debian's
// real doveadm 2.3 binary, so the wire protocol is checked against the
// client operators actually run, not against our own reading of it.
package doveadmcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

var (
	usherBin   string
	doveadmBin string
	// missing says why the tests cannot run here; empty when they can.
	missing string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if doveadmBin, err = exec.LookPath("doveadm"); err != nil {
		missing = "doveadm not installed (apt-get install dovecot-core)"
		return m.Run()
	}
	// USHER_BIN runs a prebuilt binary, e.g. while another package is
	// mid-edit or to test a release build.
	if usherBin = os.Getenv("USHER_BIN"); usherBin != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "usher-doveadmcli-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	usherBin = filepath.Join(dir, "usher")
	build := exec.Command("go", "build", "-race", "-o", usherBin, "../../cmd/usher")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building usher:", err)
		return 1
	}
	return m.Run()
}

func requireDoveadm(t *testing.T) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv(testenv.RequireEnv) == "1" {
		t.Fatalf("%s (%s=1)", missing, testenv.RequireEnv)
	}
	t.Skipf("%s (set %s=1 to make this a failure)", missing, testenv.RequireEnv)
}

// usher is one running usher whose director_mail_servers are two addresses
// next to its own. Nothing listens there: admin commands never connect to
// backends.
type usher struct {
	t        *testing.T
	IP       netip.Addr
	Admin    string // ip:port of the director-admin TCP listener
	Backends []string
	dir      string
	dovecot  string // the config file doveadm reads
	log      *lockedBuffer
	cmd      *exec.Cmd
}

func startUsher(t *testing.T) *usher {
	t.Helper()
	requireDoveadm(t)
	// 127.X.Y.10 with X never 0, where the shared anchor lives.
	x, y := byte(1+rand.IntN(254)), byte(rand.IntN(256))
	ip := netip.AddrFrom4([4]byte{127, x, y, 10})
	u := &usher{t: t, IP: ip, dir: t.TempDir(), log: &lockedBuffer{}}
	for i := byte(11); i <= 12; i++ {
		u.Backends = append(u.Backends, netip.AddrFrom4([4]byte{127, x, y, i}).String())
	}
	imapPort, adminPort := testenv.FreePort(t, ip), testenv.FreePort(t, ip)
	u.Admin = net.JoinHostPort(ip.String(), strconv.Itoa(adminPort))
	conf := fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap
ssl = no
director_servers = %[1]s:9090
director_mail_servers = %[3]s
service imap-login {
  inet_listener imap {
    port = %[4]d
  }
  inet_listener imaps {
    port = 0
  }
}
service director {
  inet_listener director-admin {
    port = %[5]d
  }
}
`, ip, u.dir, strings.Join(u.Backends, " "), imapPort, adminPort)
	usherConf := filepath.Join(u.dir, "usher.conf")
	must(t, os.WriteFile(usherConf, []byte(conf), 0o600))
	// doveadm reads its own config; base_dir is all it needs to stay out of
	// the system's /run/dovecot.
	must(t, os.MkdirAll(filepath.Join(u.dir, "doveadm-run"), 0o755))
	u.dovecot = filepath.Join(u.dir, "dovecot.conf")
	must(t, os.WriteFile(u.dovecot, []byte("base_dir = "+filepath.Join(u.dir, "doveadm-run")+"\n"), 0o644))

	u.cmd = exec.Command(usherBin, "serve", "-c", usherConf)
	u.cmd.Stdout, u.cmd.Stderr = u.log, u.log
	must(t, u.cmd.Start())
	exited := make(chan struct{})
	go func() { u.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		u.cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("usher log:\n%s", u.log.String())
		}
	})
	// Startup includes a raft election; the bound only stops a broken build
	// from hanging the suite.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", u.Admin); err == nil {
			c.Close()
			return u
		}
		select {
		case <-exited:
			t.Fatalf("usher exited during startup:\n%s", u.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("usher did not open %s:\n%s", u.Admin, u.log.String())
		}
	}
}

// result is one doveadm run.
type result struct {
	Stdout, Stderr string
	Code           int
}

// doveadm runs `doveadm -c <conf> [-f fmt] director <sub...> -a <admin> <args...>`.
// sub is the subcommand words ("status", "ring status"); format may be "".
func (u *usher) doveadm(format, sub string, args ...string) result {
	u.t.Helper()
	argv := []string{"-c", u.dovecot}
	if format != "" {
		argv = append(argv, "-f", format)
	}
	argv = append(argv, "director")
	argv = append(argv, strings.Fields(sub)...)
	argv = append(argv, "-a", u.Admin)
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, doveadmBin, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		u.t.Fatalf("doveadm %s: %v\nstderr: %s", strings.Join(argv, " "), err, r.Stderr)
	}
	return r
}

// ok runs doveadm and fails the test unless it exits 0 with nothing on stderr.
func (u *usher) ok(format, sub string, args ...string) string {
	u.t.Helper()
	r := u.doveadm(format, sub, args...)
	if r.Code != 0 || r.Stderr != "" {
		u.t.Fatalf("doveadm director %s %v: exit %d\nstdout: %s\nstderr: %s", sub, args, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// hostRow is one row of `doveadm -f tab director status`.
type hostRow struct {
	IP, Tag, Vhosts, State, Changed, Users string
}

func (u *usher) hosts() map[string]hostRow {
	u.t.Helper()
	lines := strings.Split(strings.TrimRight(u.ok("tab", "status"), "\n"), "\n")
	if lines[0] != "mail server ip\ttag\tvhosts\tstate\tstate changed\tusers" {
		u.t.Fatalf("tab header = %q", lines[0])
	}
	out := map[string]hostRow{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 6 {
			u.t.Fatalf("tab row %q: %d fields", l, len(f))
		}
		out[f[0]] = hostRow{f[0], f[1], f[2], f[3], f[4], f[5]}
	}
	return out
}

// userStatus is `doveadm director status <user>`.
type userStatus struct{ Current, Expires, Hashed, Initial string }

func (u *usher) user(name string) userStatus {
	u.t.Helper()
	out := u.ok("", "status", name)
	var s userStatus
	var rest string
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		u.t.Fatalf("status %s: %q", name, out)
	}
	cur, ok1 := strings.CutPrefix(lines[0], "Current: ")
	s.Hashed, _ = strings.CutPrefix(lines[1], "Hashed: ")
	s.Initial, _ = strings.CutPrefix(lines[2], "Initial config: ")
	s.Current, rest, _ = strings.Cut(cur, " (expires ")
	s.Expires = strings.TrimSuffix(rest, ")")
	if !ok1 || !strings.HasSuffix(rest, ")") {
		u.t.Fatalf("status %s: %q", name, out)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
