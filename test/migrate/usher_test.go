package migrate

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/usher-mail/usher/internal/testenv"
)

// usherProc is an usher in front of the anchor's backends, on the anchor's
// subnet, with the hashing and expiry a carried-over Dovecot config would
// give it.
type usherProc struct {
	*testenv.Usher
	imap, adminSocket string
}

// newUsher writes the config of an usher at .last of the anchor's subnet.
func newUsher(t *testing.T, a *anchor, last byte) *usherProc {
	t.Helper()
	b := a.b1.As4()
	b[3] = last
	ip := netip.AddrFrom4(b)
	dir := t.TempDir()
	imap := testenv.FreePort(t, ip)
	conf := testenv.UsherConf{IP: ip, Dir: dir, Protocols: "imap",
		Settings: fmt.Sprintf(`ssl = no
disable_plaintext_auth = no
mail_max_userip_connections = 1000
director_servers = %s:%d
director_mail_servers = %s %s
director_user_expire = 15 min
backend_imap_port = %d
doveadm_password = %s`, ip, testenv.FreePort(t, ip), a.b1, a.b2, imapPort, password),
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: imap}, {Name: "imaps"}}},
			testenv.Inet("doveadm", "http", testenv.FreePort(t, ip)),
			{Name: "director", Unix: []string{"director-admin"}},
		}}
	return &usherProc{Usher: testenv.NewUsher(t, ip, usherBin, conf.Write(t)),
		imap: net.JoinHostPort(ip.String(), strconv.Itoa(imap)), adminSocket: filepath.Join(dir, "run", "director-admin")}
}

// start runs usher until the test ends.
func (u *usherProc) start(t *testing.T) {
	t.Helper()
	u.Start(t, u.imap, u.adminSocket)
}

// runImport runs `usher import` against the Dovecot director at src and
// returns its report; any failure fails the test.
func (u *usherProc) runImport(t *testing.T, src string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(usherBin, append([]string{"import", "-a", src, "-c", u.Conf}, extra...)...)
	var stderr testenv.LogBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("usher import: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	return string(out)
}
