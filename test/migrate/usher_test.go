package migrate

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// usherProc is an usher in front of the anchor's backends, on the anchor's
// subnet, with the hashing and expiry a carried-over Dovecot config would
// give it.
type usherProc struct {
	imap, adminSocket, conf string
	log                     *testenv.LogBuffer
}

// newUsher writes the config of an usher at .last of the anchor's subnet.
func newUsher(t *testing.T, a *anchor, last byte) *usherProc {
	t.Helper()
	b := a.b1.As4()
	b[3] = last
	ip := netip.AddrFrom4(b)
	dir := t.TempDir()
	imap := testenv.FreePort(t, ip)
	conf := fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap
ssl = no
disable_plaintext_auth = no
mail_max_userip_connections = 1000
director_servers = %[1]s:%[3]d
director_mail_servers = %[4]s %[5]s
director_user_expire = 15 min
backend_imap_port = %[6]d
doveadm_password = %[7]s
service imap-login {
  inet_listener imap {
    port = %[8]d
  }
  inet_listener imaps {
    port = 0
  }
}
service doveadm {
  inet_listener http {
    port = %[9]d
  }
}
service director {
  unix_listener director-admin {
  }
}
`, ip, dir, testenv.FreePort(t, ip), a.b1, a.b2, imapPort, password, imap, testenv.FreePort(t, ip))
	u := &usherProc{imap: net.JoinHostPort(ip.String(), strconv.Itoa(imap)),
		adminSocket: filepath.Join(dir, "run", "director-admin"), conf: filepath.Join(dir, "usher.conf"),
		log: &testenv.LogBuffer{}}
	if err := os.WriteFile(u.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return u
}

// start runs usher until the test ends.
func (u *usherProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(usherBin, "serve", "-c", u.conf)
	cmd.Stdout, cmd.Stderr = u.log, u.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("usher log:\n%s", u.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c1, err1 := net.Dial("tcp", u.imap)
		c2, err2 := net.Dial("unix", u.adminSocket)
		for _, c := range []net.Conn{c1, c2} {
			if c != nil {
				c.Close()
			}
		}
		if err1 == nil && err2 == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("usher exited:\n%s", u.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("usher did not start:\n%s", u.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runImport runs `usher import` against the Dovecot director at src and
// returns its report; any failure fails the test.
func (u *usherProc) runImport(t *testing.T, src string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(usherBin, append([]string{"import", "-a", src, "-c", u.conf}, extra...)...)
	var stderr testenv.LogBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("usher import: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	return string(out)
}
