package api

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/devbackend"
)

// realUsher is an usher process in front of one in-memory IMAP backend with
// sessions proxied IMAP sessions held open by this process.
type realUsher struct {
	url      string
	sessions int
}

// usherFDsPerSession: a proxied session holds the client socket and the
// backend socket; the relay borrows a splice pipe only while a burst moves.
const usherFDsPerSession = 2

// maxRealSessions is what RLIMIT_NOFILE (inherited by usher) allows, with
// 200 descriptors spare for listeners, raft and the runtime. This process
// needs only 2 per session (client end and in-process backend end).
func maxRealSessions() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	return int(rl.Cur-200) / usherFDsPerSession
}

func usherBinary(b *testing.B) string {
	if p := os.Getenv("USHER_BIN"); p != "" {
		return p
	}
	p := filepath.Join(b.TempDir(), "usher")
	build := exec.Command("go", "build", "-o", p, "../../cmd/usher")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building usher (set USHER_BIN to use a prebuilt one): %v\n%s", err, out)
	}
	return p
}

func startRealUsher(b *testing.B, n int) *realUsher {
	b.Helper()
	ip, xy := randomLoopback(10)
	backendIP := netip.AddrFrom4([4]byte{127, xy[0], xy[1], 11})
	users := make(map[string]string, n)
	for i := range n {
		users[realUser(i)] = "pass"
	}
	quiet := slog.New(slog.DiscardHandler)
	be, err := devbackend.Start(net.JoinHostPort(backendIP.String(), "0"), "b1", users, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	bePort := be.Addr().(*net.TCPAddr).Port

	imapL, apiL := mustListen(b, ip), mustListen(b, ip)
	imapPort, apiPort := imapL.Addr().(*net.TCPAddr).Port, apiL.Addr().(*net.TCPAddr).Port
	imapL.Close()
	apiL.Close()
	dir := b.TempDir()
	conf := fmt.Sprintf(`listen = %[1]s
base_dir = %[2]s/run
state_dir = %[2]s/state
protocols = imap
ssl = no
disable_plaintext_auth = no
director_servers = %[1]s:9090
director_mail_servers = %[3]s
backend_imap_port = %[4]d
doveadm_password = %[5]s
service imap-login {
  inet_listener imap {
    port = %[6]d
  }
  inet_listener imaps {
    port = 0
  }
}
service doveadm {
  inet_listener http {
    port = %[7]d
  }
}
`, ip, dir, backendIP, bePort, apiPassword, imapPort, apiPort)
	confPath := filepath.Join(dir, "usher.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "usher.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(usherBinary(b), "serve", "-c", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
	})
	imapAddr := net.JoinHostPort(ip.String(), strconv.Itoa(imapPort))
	u := &realUsher{url: fmt.Sprintf("http://%s/doveadm/v1", net.JoinHostPort(ip.String(), strconv.Itoa(apiPort))), sessions: n}
	// Startup includes a raft election; the bound keeps a broken build from
	// hanging the run.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", imapAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("usher did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conns := openSessions(b, imapAddr, n)
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return u
}

func realUser(i int) string { return fmt.Sprintf("user%05d", i) }

// openSessions logs n distinct users in through usher, 64 at a time, and
// leaves the connections open. The first failure stops the rest, so a
// refusing usher costs one login timeout, not n.
func openSessions(b *testing.B, addr string, n int) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if failed.Load() {
					continue
				}
				c, err := login(addr, realUser(i))
				if err != nil {
					failed.Store(true)
					errs <- fmt.Errorf("%s: %w", realUser(i), err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		b.Fatalf("opening sessions: %v", err)
	}
	return conns
}

func login(addr, user string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	fmt.Fprintf(c, "a LOGIN %s pass\r\n", user)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("login: %w", err)
		}
		if strings.HasPrefix(line, "a OK") {
			break
		}
		if strings.HasPrefix(line, "a ") {
			c.Close()
			return nil, fmt.Errorf("login: %s", strings.TrimSpace(line))
		}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// BenchmarkRealUsher measures the whole path: a real usher process, its
// router and session registry, with real proxied sessions open.
func BenchmarkRealUsher(b *testing.B) {
	n := min(benchSessions, maxRealSessions())
	if n < benchSessions {
		b.Logf("RLIMIT_NOFILE allows usher %d sessions, not %d", n, benchSessions)
	}
	u := startRealUsher(b, n)
	c := newClient()
	// Registration follows the backend's OK; wait until who sees everyone.
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, err := call(c, u.url, body("who"))
		if err != nil {
			b.Fatal(err)
		}
		got, err := rows(data)
		if err != nil {
			b.Fatal(err)
		}
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("who shows %d sessions, want %d", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("%d proxied sessions open", n)
	for _, cmd := range []string{"directorStatus", "who"} {
		b.Run(fmt.Sprintf("%s/sessions=%d", cmd, n), func(b *testing.B) {
			req := body(cmd)
			data, err := call(c, u.url, req)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			runRequests(b, c, u.url, req)
		})
	}
}
