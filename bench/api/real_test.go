package api

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/devbackend"
	"github.com/usher-mail/usher/internal/testenv"
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

func startRealUsher(b *testing.B, n int) *realUsher {
	b.Helper()
	// USHER_BIN names a prebuilt binary instead.
	bin, cleanup, err := testenv.BuildUsher(false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	ip := testenv.RandomLoopback(10)
	backendIP := ip.Next()
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

	imapPort, apiPort := testenv.FreePort(b, ip), testenv.FreePort(b, ip)
	conf := testenv.UsherConf{IP: ip, Dir: b.TempDir(), Protocols: "imap",
		Settings: fmt.Sprintf(`ssl = no
disable_plaintext_auth = no
director_servers = %s:9090
director_mail_servers = %s
backend_imap_port = %d
doveadm_password = %s`, ip, backendIP, bePort, apiPassword),
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: imapPort}, {Name: "imaps"}}},
			testenv.Inet("doveadm", "http", apiPort),
		}}
	imapAddr := net.JoinHostPort(ip.String(), strconv.Itoa(imapPort))
	u := &realUsher{url: fmt.Sprintf("http://%s/doveadm/v1", net.JoinHostPort(ip.String(), strconv.Itoa(apiPort))), sessions: n}
	testenv.NewUsher(b, ip, bin, conf.Write(b)).Start(b, imapAddr)
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
