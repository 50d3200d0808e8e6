// Package testenv starts real Dovecot 2.3 backends on loopback for tests: each backend is a
// separate Dovecot instance (own config, base_dir, state_dir, logs and, by default, own mail
// root, so misrouting shows up as mail in the wrong place) with IMAP, POP3, LMTP, ManageSieve,
// the doveadm TCP protocol and the doveadm HTTP API.
//
// All backends of a cluster listen on the same ports on distinct 127.x.y.z addresses, because a
// director hands out a backend IP and one port per protocol, exactly like Dovecot's director_mail_servers.
//
// Tests that use it call StartDovecot (or RequireDovecot first when they need the binaries for
// something else); without Dovecot installed they are skipped unless USHER_REQUIRE_DOVECOT=1,
// which CI sets so that a missing package fails loudly instead of silently skipping.
//
// Typical use:
//
//	c := testenv.StartDovecot(t, testenv.Options{N: 2, Users: 10})
//	b1 := c.Backends()[0]
//	if err := b1.AddMessages("user001", 5, 1000); err != nil { t.Fatal(err) }
//	// ... point the proxy at b1.IP / b2.IP with c.Ports(), log in as user001:pass ...
//	rows := b1.Who(t) // the forwarded client IP shows in rows[i].IPs
//	_ = b1.Kill()     // a dead backend; b1.Start() brings it back on the same address
package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv is the environment variable that turns a missing Dovecot from a skip into a failure.
const RequireEnv = "USHER_REQUIRE_DOVECOT"

// libexecDir holds Dovecot's service binaries on Debian.
const libexecDir = "/usr/lib/dovecot"

// RequireDovecot skips the test when Dovecot 2.3 cannot be run here (binaries missing or not
// root, which Dovecot needs to switch to the mail uid), or fails it when USHER_REQUIRE_DOVECOT=1.
func RequireDovecot(t testing.TB) {
	t.Helper()
	if err := dovecotUsable(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("testenv: %v (%s=1)", err, RequireEnv)
		}
		t.Skipf("testenv: %v (set %s=1 to make this a failure)", err, RequireEnv)
	}
}

func dovecotUsable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("Dovecot backends need root (euid is %d)", os.Geteuid())
	}
	if _, err := DovecotBinary(); err != nil {
		return err
	}
	for _, name := range []string{"imap", "imap-login", "pop3", "pop3-login", "lmtp",
		"managesieve", "managesieve-login", "doveadm-server", "auth", "anvil"} {
		p := filepath.Join(libexecDir, name)
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("Dovecot is not fully installed: %s missing (apt-get install dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-managesieved)", p)
		}
	}
	return nil
}

// DovecotBinary finds the master binary; /usr/sbin may be missing from a test's PATH.
func DovecotBinary() (string, error) {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	const fallback = "/usr/sbin/dovecot"
	if st, err := os.Stat(fallback); err == nil && st.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("dovecot binary not found in PATH or %s", fallback)
}

// Ports are the listener ports shared by every backend of a cluster. Zero means "pick a free one".
type Ports struct {
	IMAP, POP3, LMTP, Sieve int

	// HTTP is the doveadm HTTP API, Doveadm the doveadm TCP protocol.
	HTTP, Doveadm int
}

func (p Ports) list() []int { return []int{p.IMAP, p.POP3, p.LMTP, p.Sieve, p.HTTP, p.Doveadm} }

// Options configure StartDovecot. The zero value gives two backends with 100 users.
type Options struct {
	// N is the number of backends (default 2), named b1, b2, ...
	N int
	// Users is the number of users user001.. (default 100).
	Users int
	// Password is every user's password (default "pass").
	Password string
	// DoveadmPassword is doveadm_password: HTTP API Basic auth doveadm:<it> (default "hellodoveadm").
	DoveadmPassword string
	// APIKey is doveadm_api_key: X-Dovecot-API base64(key) (default "key").
	APIKey string
	// IPs, when set, are the backends' addresses (len must be N, all in 127.0.0.0/8). By default
	// each cluster gets a random 127.X.Y.11, .12, ... so that parallel test processes and several
	// clusters in one process never share an address.
	IPs []netip.Addr
	// Ports fixes listener ports; zero fields are chosen free on every backend IP.
	Ports Ports
	// SharedMail makes all backends use one mail root (as a shared NFS store would); by default
	// each backend has its own, so a user routed to the wrong backend sees no mail.
	SharedMail bool
	// MailUID and MailGID own the mail (default 21000); no system user is needed.
	MailUID, MailGID int
	// HAProxy makes the IMAP, POP3, LMTP and ManageSieve listeners take a PROXY header
	// (haproxy = yes) from 127.0.0.0/8, and empties login_trusted_networks, so that a client's
	// address can reach the backend only through the header, never through ID or XCLIENT.
	HAProxy bool
	// StoredPassword, when set, gives a user's password field in the backends' passwd-file
	// as `doveadm pw` prints it (e.g. a {SCRAM-SHA-256} hash of Password); "" or no func:
	// {PLAIN}Password.
	StoredPassword func(user string) string
	// Config is appended to every backend's dovecot.conf (a setting given again there
	// overrides the generated one, as Dovecot reads the file top to bottom): more
	// auth_mechanisms, another passdb.
	Config string
}

func (o *Options) setDefaults() {
	if o.N <= 0 {
		o.N = 2
	}
	if o.Users <= 0 {
		o.Users = 100
	}
	if o.Password == "" {
		o.Password = "pass"
	}
	if o.DoveadmPassword == "" {
		o.DoveadmPassword = "hellodoveadm"
	}
	if o.APIKey == "" {
		o.APIKey = "key"
	}
	if o.MailUID == 0 {
		o.MailUID = 21000
	}
	if o.MailGID == 0 {
		o.MailGID = 21000
	}
}

// UserName returns the name of user i (1-based): user001, user002, ...
func UserName(i int) string { return fmt.Sprintf("user%03d", i) }
