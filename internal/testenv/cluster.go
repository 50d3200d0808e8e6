package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster is a set of running Dovecot backends started by StartDovecot.
type Cluster struct {
	opt      Options
	ports    Ports
	dir      string
	backends []*Backend
}

// startAttempts bounds retries when a port picked as free was taken before Dovecot bound it.
const startAttempts = 3

// StartDovecot starts opt.N Dovecot backends and waits until every listener accepts and IMAP
// greets. t.Cleanup stops them all. It skips or fails the test like RequireDovecot.
func StartDovecot(t testing.TB, opt Options) *Cluster {
	t.Helper()
	RequireDovecot(t)
	opt.setDefaults()
	if len(opt.IPs) != 0 && len(opt.IPs) != opt.N {
		t.Fatalf("testenv: Options.IPs has %d addresses for N=%d", len(opt.IPs), opt.N)
	}
	ips := opt.IPs
	if len(ips) == 0 {
		var err error
		if ips, err = randomLoopbackIPs(opt.N); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, ip := range ips {
		if !ip.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(ip) {
			t.Fatalf("testenv: backend address %v is not in 127.0.0.0/8", ip)
		}
		if seen[ip] {
			t.Fatalf("testenv: backend address %v given twice", ip)
		}
		seen[ip] = true
	}

	// base_dir holds unix sockets, whose paths are limited to 107 bytes; t.TempDir paths can
	// be too long for that, so the run directories live in a short directory of their own.
	runRoot, err := os.MkdirTemp("/tmp", "usher-tenv-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runRoot) })
	c := &Cluster{opt: opt, dir: t.TempDir()}
	// t.TempDir is 0700 below a 0700 parent; Dovecot's unprivileged processes (auth as dovecot,
	// mail as the mail uid) must traverse it.
	chmods := []string{runRoot, filepath.Dir(c.dir), c.dir}
	if !traversable(filepath.Dir(filepath.Dir(c.dir))) {
		// TMPDIR/GOTMPDIR below a private directory: keep everything in the run root instead.
		c.dir = filepath.Join(runRoot, "data")
		chmods = []string{runRoot}
	}
	for _, d := range chmods {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}

	for i, ip := range ips {
		name := fmt.Sprintf("b%d", i+1)
		c.backends = append(c.backends, &Backend{
			Name:            name,
			IP:              ip,
			Dir:             filepath.Join(c.dir, name),
			RunDir:          filepath.Join(runRoot, name),
			DoveadmPassword: opt.DoveadmPassword,
			APIKey:          opt.APIKey,
			uid:             opt.MailUID,
			gid:             opt.MailGID,
			haproxy:         opt.HAProxy,
		})
	}
	// Registered before starting so that a half-started cluster is stopped too.
	t.Cleanup(func() {
		for _, b := range c.backends {
			if t.Failed() {
				b.logTail(t)
			}
			if err := b.Stop(); err != nil {
				t.Errorf("testenv: stopping %s: %v", b.Name, err)
			}
		}
	})

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if lastErr = c.start(t); lastErr == nil {
			return c
		}
		for _, b := range c.backends {
			_ = b.Stop()
		}
		if !isPortRace(lastErr) || opt.Ports != (Ports{}) {
			break
		}
		t.Logf("testenv: attempt %d: %v; retrying with other ports", attempt, lastErr)
	}
	t.Fatalf("testenv: starting Dovecot: %v", lastErr)
	return nil
}

func (c *Cluster) start(t testing.TB) error {
	ports, err := freePorts(c.opt.Ports, c.addrs())
	if err != nil {
		return err
	}
	c.ports = ports
	for _, b := range c.backends {
		b.setPorts(ports)
		mailRoot := filepath.Join(b.Dir, "mail")
		if c.opt.SharedMail {
			mailRoot = filepath.Join(c.dir, "mail")
		}
		if err := b.writeFiles(c.opt, mailRoot); err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
	}
	for _, b := range c.backends {
		if err := b.Start(); err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
		t.Logf("testenv: %s started on %v (imap %d pop3 %d lmtp %d sieve %d http %d doveadm %d), dir %s",
			b.Name, b.IP, b.IMAPPort, b.POP3Port, b.LMTPPort, b.SievePort, b.HTTPPort, b.DoveadmPort, b.Dir)
	}
	return nil
}

func (c *Cluster) addrs() []netip.Addr {
	out := make([]netip.Addr, len(c.backends))
	for i, b := range c.backends {
		out[i] = b.IP
	}
	return out
}

func isPortRace(err error) bool {
	return strings.Contains(err.Error(), "Address already in use")
}

// Backends returns the backends in order b1, b2, ...
func (c *Cluster) Backends() []*Backend { return append([]*Backend(nil), c.backends...) }

// Ports returns the listener ports every backend uses.
func (c *Cluster) Ports() Ports { return c.ports }

// Users returns the user names user001.. in order.
func (c *Cluster) Users() []string {
	out := make([]string, c.opt.Users)
	for i := range out {
		out[i] = UserName(i + 1)
	}
	return out
}

// Password is every user's password.
func (c *Cluster) Password() string { return c.opt.Password }

// DoveadmPassword is the backends' doveadm_password.
func (c *Cluster) DoveadmPassword() string { return c.opt.DoveadmPassword }

// APIKey is the backends' doveadm_api_key.
func (c *Cluster) APIKey() string { return c.opt.APIKey }

// traversable reports whether every directory from / down to dir is searchable by anyone.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
