package testenv

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Usher is one usher process run from a config file, its output kept for the test's log. The
// test's cleanup stops it and, when the test failed, logs what it printed.
type Usher struct {
	IP   netip.Addr // where it listens
	Bin  string
	Conf string
	Env  []string // added to the process's environment
	Log  *LogBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// usherStartTimeout only bounds how long a broken start may hang: startup includes a raft
// election, well under it on a loaded machine.
const usherStartTimeout = 60 * time.Second

// NewUsher returns a stopped usher at ip for bin and conf; Start or Spawn runs it.
func NewUsher(t testing.TB, ip netip.Addr, bin, conf string) *Usher {
	u := &Usher{IP: ip, Bin: bin, Conf: conf, Log: &LogBuffer{}}
	t.Cleanup(func() {
		u.Stop()
		if t.Failed() {
			t.Logf("usher %s log:\n%s", u.IP, u.Log.String())
		}
	})
	return u
}

// Addr is "ip:port" on usher's address.
func (u *Usher) Addr(port int) string { return net.JoinHostPort(u.IP.String(), strconv.Itoa(port)) }

// UsherPorts are the listener ports a test's usher may open, each picked free on its address.
type UsherPorts struct {
	IMAPPort, IMAPS, POP3Port, LMTPPort, Sieve int
	APIPort, Admin, Metrics, RingPort          int
}

// FreeUsherPorts picks every port of UsherPorts free on ip (FreePort).
func FreeUsherPorts(t testing.TB, ip netip.Addr) UsherPorts {
	t.Helper()
	var p UsherPorts
	for _, f := range []*int{&p.IMAPPort, &p.IMAPS, &p.POP3Port, &p.LMTPPort, &p.Sieve, &p.APIPort, &p.Admin, &p.Metrics, &p.RingPort} {
		*f = FreePort(t, ip)
	}
	return p
}

// Start runs usher and waits until every address in up accepts (see WaitUp).
func (u *Usher) Start(t testing.TB, up ...string) {
	t.Helper()
	u.Spawn(t)
	u.WaitUp(t, up...)
}

// Spawn starts the process without waiting: directors that need each other for a quorum must
// be started together.
func (u *Usher) Spawn(t testing.TB) {
	t.Helper()
	cmd := exec.Command(u.Bin, "serve", "-c", u.Conf)
	cmd.Stdout, cmd.Stderr = u.Log, u.Log
	cmd.Env = append(os.Environ(), u.Env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting usher %s: %v", u.IP, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	u.mu.Lock()
	u.cmd, u.exited = cmd, exited
	u.mu.Unlock()
}

// WaitUp waits until every address accepts a connection: "ip:port" for TCP, a path (starting
// with /) for a unix socket. It fails the test if usher exits first.
func (u *Usher) WaitUp(t testing.TB, up ...string) {
	t.Helper()
	u.mu.Lock()
	exited := u.exited
	u.mu.Unlock()
	deadline := time.Now().Add(usherStartTimeout)
	for _, addr := range up {
		network := "tcp"
		if strings.HasPrefix(addr, "/") {
			network = "unix"
		}
		for {
			if c, err := net.DialTimeout(network, addr, 2*time.Second); err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("testenv: usher %s exited during startup:\n%s", u.IP, u.Log.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: usher %s did not open %s:\n%s", u.IP, addr, u.Log.String())
			}
		}
	}
}

// Signal sends sig to the running process, if any.
func (u *Usher) Signal(sig syscall.Signal) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd != nil {
		u.cmd.Process.Signal(sig)
	}
}

// Pid is the running process's id, 0 if none.
func (u *Usher) Pid() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return 0
	}
	return u.cmd.Process.Pid
}

// Stop ends the process with SIGTERM (after SIGCONT, should it be stopped) and returns its exit
// code; -1 if it was not running. One that ignores SIGTERM is killed after a bound, which
// shows as -1 too.
func (u *Usher) Stop() int {
	cmd, exited := u.take()
	if cmd == nil {
		return -1
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(usherStartTimeout):
		cmd.Process.Kill()
		<-exited
	}
	return cmd.ProcessState.ExitCode()
}

// Kill kills usher without any chance to clean up, as a crash would.
func (u *Usher) Kill() {
	cmd, exited := u.take()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

func (u *Usher) take() (*exec.Cmd, chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cmd, exited := u.cmd, u.exited
	u.cmd, u.exited = nil, nil
	return cmd, exited
}
