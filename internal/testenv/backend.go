package testenv

import (
	"bufio"
	"errors"
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
)

// Backend is one Dovecot instance. The exported fields are fixed once StartDovecot returns.
type Backend struct {
	Name string // b1, b2, ...
	IP   netip.Addr

	IMAPPort, POP3Port, LMTPPort, SievePort int

	// HTTPPort is the doveadm HTTP API, DoveadmPort the doveadm TCP protocol.
	HTTPPort, DoveadmPort int

	Dir        string // config, users, state, logs and (unless SharedMail) mail
	RunDir     string // base_dir: kept short for unix socket path limits
	MailRoot   string // maildir:<MailRoot>/%u
	ConfigPath string
	LogPath    string

	DoveadmPassword, APIKey string

	uid, gid int
	haproxy  bool // Options.HAProxy

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the master has exited
}

func (b *Backend) setPorts(p Ports) {
	b.IMAPPort, b.POP3Port, b.LMTPPort, b.SievePort = p.IMAP, p.POP3, p.LMTP, p.Sieve
	b.HTTPPort, b.DoveadmPort = p.HTTP, p.Doveadm
}

// HostPort returns "ip:port" for one of the backend's ports, e.g. b.HostPort(b.IMAPPort).
func (b *Backend) HostPort(port int) string {
	return net.JoinHostPort(b.IP.String(), strconv.Itoa(port))
}

// readyTimeout only bounds how long a broken start may hang; a healthy start takes well under it.
const readyTimeout = 60 * time.Second

// Start starts the backend's Dovecot master in the foreground (-F), so that it is our child
// and its pid is known without reading pid files, in its own process group so that Kill takes
// every Dovecot process of this instance and nothing else. It returns once every listener
// accepts and IMAP greets. Starting a running backend is an error.
func (b *Backend) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runningLocked() {
		return fmt.Errorf("%s is already running", b.Name)
	}
	bin, err := DovecotBinary()
	if err != nil {
		return err
	}
	// A master killed with SIGKILL leaves its pid file; a reused pid would make Dovecot refuse to start.
	_ = os.Remove(filepath.Join(b.RunDir, "master.pid"))
	out, err := os.OpenFile(b.startupLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(bin, "-F", "-c", b.ConfigPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	if err := b.waitReady(done); err != nil {
		b.killLocked()
		return fmt.Errorf("%w\n%s", err, b.tail(20))
	}
	return nil
}

// Stop shuts the backend down like an administrator would (SIGTERM to the master), then makes
// sure no process of its group is left holding a port. Stopping a stopped backend is a no-op.
func (b *Backend) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	if b.runningLocked() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(30 * time.Second):
			// Only a wedged master gets here; fall through to SIGKILL.
		}
	}
	b.killLocked()
	return nil
}

// AddConfig restarts the backend with extra appended to its configuration, unless the
// configuration already holds it.
func (b *Backend) AddConfig(extra string) error {
	conf, err := os.ReadFile(b.ConfigPath)
	if err != nil {
		return err
	}
	if strings.Contains(string(conf), extra) {
		return nil
	}
	if err := b.Stop(); err != nil {
		return err
	}
	if err := os.WriteFile(b.ConfigPath, append(conf, extra...), 0o644); err != nil {
		return err
	}
	return b.Start()
}

// Kill simulates a crashed backend host: SIGKILL to every process of the instance, so open
// sessions are cut without a BYE. Kill on a stopped backend is a no-op.
func (b *Backend) Kill() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	b.killLocked()
	return nil
}

// Running reports whether the backend's master process is alive.
func (b *Backend) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runningLocked()
}

func (b *Backend) runningLocked() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

func (b *Backend) killLocked() {
	pgid := b.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-b.done
	// Children may outlive the master by a moment; wait until none can still hold a listener.
	for groupAlive(pgid) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
	b.cmd, b.done = nil, nil
}

// groupAlive reports whether a non-zombie process is in process group pgid. Zombies are
// skipped: in a container whose init does not reap, they would never go away.
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// waitReady polls until every listener accepts and imap-login sends its greeting, failing
// early if the master exits.
func (b *Backend) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	ports := []int{b.IMAPPort, b.POP3Port, b.LMTPPort, b.SievePort, b.HTTPPort, b.DoveadmPort}
	for _, p := range ports {
		for {
			select {
			case <-done:
				return fmt.Errorf("dovecot master exited during startup")
			default:
			}
			err := b.probe(p, p == b.IMAPPort)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready: %w", b.HostPort(p), err)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	return nil
}

func (b *Backend) probe(port int, greeting bool) error {
	c, err := net.DialTimeout("tcp", b.HostPort(port), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if !greeting {
		return nil
	}
	if b.haproxy {
		// A v2 LOCAL header, byte by byte: the balancer checking on its own behalf.
		if _, err := c.Write([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")); err != nil {
			return err
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return errors.New("unexpected IMAP greeting " + strconv.Quote(line))
	}
	return nil
}

func (b *Backend) startupLog() string { return filepath.Join(b.Dir, "log", "startup.log") }

// tail returns the last n lines of the startup output and of the Dovecot log.
func (b *Backend) tail(n int) string {
	var sb strings.Builder
	for _, p := range []string{b.startupLog(), b.LogPath} {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-n):]
		fmt.Fprintf(&sb, "--- %s (last %d lines)\n%s\n", p, len(lines), strings.Join(lines, "\n"))
	}
	return sb.String()
}

func (b *Backend) logTail(t testing.TB) {
	t.Helper()
	if s := b.tail(40); s != "" {
		t.Logf("testenv: %s logs:\n%s", b.Name, s)
	}
}
