package lmtpbench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usher-mail/usher/internal/lmtp"
	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/testenv"
)

const (
	usersPerBackend = 10
	messageSize     = 100 << 10
	// clients is the number of concurrent LMTP connections, as an MTA's LMTP delivery agents.
	clients = 4
)

// halfRouter puts user001..user010 on the first backend and user011..user020 on the second.
// Real routing (the director's hash ring) costs microseconds; what is measured is the path of
// the message.
type halfRouter struct{ backends []netip.Addr }

func (r halfRouter) Route(_ context.Context, user string) (netip.Addr, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(user, "user"))
	if err != nil || n < 1 || n > 2*usersPerBackend {
		return netip.Addr{}, fmt.Errorf("unknown user %q: %w", user, login.ErrTempFail)
	}
	return r.backends[(n-1)/usersPerBackend], nil
}

func (halfRouter) Confirm(string, netip.Addr, bool) {}

// message is a 100 KB message in DATA form (CRLF lines, none starting with a dot).
func message() string {
	var sb strings.Builder
	sb.WriteString("From: sender@anchor.test\r\nTo: undisclosed-recipients:;\r\nSubject: lmtp bench\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "abcdef\r\n"
	for sb.Len() < messageSize {
		sb.WriteString(line)
	}
	sb.WriteString(".\r\n")
	return sb.String()
}

func BenchmarkLMTP(b *testing.B) {
	testenv.RequireDovecot(b)
	cl := testenv.StartDovecot(b, testenv.Options{Users: 2 * usersPerBackend})
	bs := cl.Backends()
	ips := []netip.Addr{bs[0].IP, bs[1].IP}
	port := cl.Ports().LMTP

	srv := lmtp.NewServer(lmtp.Config{BackendPort: port, UsernameFormat: "%Ln"},
		&login.Env{Router: halfRouter{ips}, Hostname: "usher.bench"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(srv.Close)

	msg := message()
	for _, rcpts := range []int{1, 10} {
		for _, via := range []string{"direct", "usher"} {
			b.Run(fmt.Sprintf("%s/%drcpt", via, rcpts), func(b *testing.B) {
				addrFor := func(worker int) string {
					if via == "usher" {
						return l.Addr().String()
					}
					return bs[worker%2].HostPort(port)
				}
				run(b, addrFor, rcpts, msg)
			})
		}
	}
}

// run delivers b.N messages over `clients` persistent connections. Worker w's recipients all
// live on backend w%2, so "direct" and "usher" hold exactly the same LMTP dialogue with
// Dovecot; usher adds its own hop.
func run(b *testing.B, addrFor func(worker int) string, rcpts int, msg string) {
	b.SetBytes(int64(len(msg)))
	b.SetParallelism((clients + 1) / 2) // RunParallel starts parallelism*GOMAXPROCS goroutines
	var worker atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := int(worker.Add(1) - 1)
		c, err := dialLMTP(addrFor(w))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.close()
		first := (w%2)*usersPerBackend + 1
		for pb.Next() {
			if err := c.deliver(first, rcpts, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

type lmtpClient struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func dialLMTP(addr string) (*lmtpClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	lc := &lmtpClient{c: c, br: bufio.NewReader(c), bw: bufio.NewWriterSize(c, 64<<10)}
	if err := lc.expect("220"); err != nil {
		return nil, err
	}
	lc.bw.WriteString("LHLO bench\r\n")
	lc.bw.Flush()
	return lc, lc.expect("250")
}

func (c *lmtpClient) close() {
	c.bw.WriteString("QUIT\r\n")
	c.bw.Flush()
	c.c.Close()
}

// expect reads one (multi-line) reply and checks its code.
func (c *lmtpClient) expect(code string) error {
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, code) {
			return fmt.Errorf("got %q, want %s", strings.TrimSpace(l), code)
		}
		if len(l) < 4 || l[3] != '-' {
			return nil
		}
	}
}

// deliver sends one message, pipelining MAIL, the RCPTs and DATA as an MTA does.
func (c *lmtpClient) deliver(first, rcpts int, msg string) error {
	c.bw.WriteString("MAIL FROM:<sender@anchor.test>\r\n")
	for i := 0; i < rcpts; i++ {
		fmt.Fprintf(c.bw, "RCPT TO:<%s@anchor.test>\r\n", testenv.UserName(first+i))
	}
	c.bw.WriteString("DATA\r\n")
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for _, code := range append(append([]string{"250"}, repeat("250", rcpts)...), "354") {
		if err := c.expect(code); err != nil {
			return err
		}
	}
	c.bw.WriteString(msg)
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for i := 0; i < rcpts; i++ {
		if err := c.expect("250"); err != nil {
			return err
		}
	}
	return nil
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
