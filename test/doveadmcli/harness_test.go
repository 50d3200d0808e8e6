// Package doveadmcli drives usher's director-admin TCP socket with Debian's
// real doveadm 2.3 binary, so the wire protocol is checked against the
// client operators actually run, not against our own reading of it.
package doveadmcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	var err error
	if doveadmBin, err = exec.LookPath("doveadm"); err != nil {
		missing = "doveadm not installed (apt-get install dovecot-core)"
		os.Exit(m.Run())
	}
	os.Exit(testenv.MainWithUsher(m, &usherBin, true))
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
	dovecot  string // the config file doveadm reads
}

func startUsher(t *testing.T) *usher {
	t.Helper()
	requireDoveadm(t)
	ip := testenv.RandomLoopback(10)
	dir := t.TempDir()
	u := &usher{t: t, IP: ip}
	for b := ip.Next(); len(u.Backends) < 2; b = b.Next() {
		u.Backends = append(u.Backends, b.String())
	}
	imapPort, adminPort := testenv.FreePort(t, ip), testenv.FreePort(t, ip)
	u.Admin = net.JoinHostPort(ip.String(), strconv.Itoa(adminPort))
	conf := testenv.UsherConf{IP: ip, Dir: dir, Protocols: "imap",
		Settings: fmt.Sprintf("ssl = no\ndirector_servers = %s:9090\ndirector_mail_servers = %s\n",
			ip, strings.Join(u.Backends, " ")),
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: imapPort}, {Name: "imaps"}}},
			testenv.Inet("director", "director-admin", adminPort),
		}}
	// doveadm reads its own config; base_dir is all it needs to stay out of
	// the system's /run/dovecot.
	must(t, os.MkdirAll(filepath.Join(dir, "doveadm-run"), 0o755))
	u.dovecot = filepath.Join(dir, "dovecot.conf")
	must(t, os.WriteFile(u.dovecot, []byte("base_dir = "+filepath.Join(dir, "doveadm-run")+"\n"), 0o644))
	testenv.NewUsher(t, ip, usherBin, conf.Write(t)).Start(t, u.Admin)
	return u
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
