package testenv

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// HAProxyFrontend is one TCP frontend of StartHAProxy: it listens on Bind and passes every
// connection to Server, leaving from Source, with the server options in Opts (for example
// "send-proxy" or "send-proxy-v2-ssl"). BindOpts follow the bind line ("ssl crt <pem>").
type HAProxyFrontend struct {
	Bind     netip.AddrPort
	BindOpts string
	Server   string // host:port
	Source   netip.Addr
	Opts     string
}

// StartHAProxy runs Debian's HAProxy in TCP mode with the frontends, on loopback, until the
// test ends; it returns once every frontend accepts. Without haproxy installed the test is
// skipped, or fails with USHER_REQUIRE_DOVECOT=1 (CI installs both).
func StartHAProxy(t testing.TB, fes ...HAProxyFrontend) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("testenv: haproxy is not installed (%s=1)", RequireEnv)
		}
		t.Skip("testenv: haproxy is not installed")
	}
	conf := "global\n\tmaxconn 100\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 30s\n\ttimeout server 30s\n"
	for i, fe := range fes {
		if !fe.Bind.Addr().IsLoopback() {
			t.Fatalf("testenv: HAProxy frontend %v is not on loopback", fe.Bind)
		}
		name := "f" + string(rune('a'+i))
		conf += "frontend " + name + "\n\tbind " + fe.Bind.String() + " " + fe.BindOpts + "\n\tdefault_backend b" + name + "\n" +
			"backend b" + name + "\n\tserver s " + fe.Server + " " + fe.Opts
		if fe.Source.IsValid() {
			conf += " source " + fe.Source.String()
		}
		conf += "\n"
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	log := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for _, fe := range fes {
		for {
			c, err := net.DialTimeout("tcp", fe.Bind.String(), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("testenv: haproxy exited:\n%s\n%s", log.String(), conf)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: haproxy never listened on %v: %v\n%s", fe.Bind, err, log.String())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}
