package proxyproto

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// serveOne accepts connections on a Listener with the policy and, for each, reads one line
// after the header and reports the addresses and the line (or the error).
type result struct {
	remote, local string
	line          string
	err           error
}

func startListener(t *testing.T, trusted string, timeout time.Duration) (addr string, results chan result, log *testenv.LogBuffer) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log = &testenv.LogBuffer{}
	var nets []netip.Prefix
	if trusted != "" {
		nets = []netip.Prefix{netip.MustParsePrefix(trusted)}
	}
	p := NewPolicy(nets, timeout, slog.New(slog.NewTextHandler(log, nil)))
	l := &Listener{Listener: tl, Policy: p}
	t.Cleanup(func() { l.Close() })
	results = make(chan result, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 6)
				_, err := io.ReadFull(c, buf)
				results <- result{c.RemoteAddr().String(), c.LocalAddr().String(), string(buf), err}
			}()
		}
	}()
	return tl.Addr().String(), results, log
}

func dial(t *testing.T, addr string, send string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if send != "" {
		if _, err := c.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func wait(t *testing.T, results chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the server never finished the connection")
	}
	return result{}
}

// The carried addresses replace the socket's, and the client's bytes follow unchanged; a
// LOCAL header keeps the socket's addresses.
func TestListenerCarriesAddresses(t *testing.T) {
	addr, results, _ := startListener(t, "127.0.0.0/8", 5*time.Second)
	dial(t, addr, "PROXY TCP4 192.0.2.7 198.51.100.1 40000 143\r\nhello!")
	r := wait(t, results)
	if r.err != nil || r.remote != "192.0.2.7:40000" || r.local != "198.51.100.1:143" || r.line != "hello!" {
		t.Fatalf("v1: %+v", r)
	}
	c := dial(t, addr, "")
	c.Write(append(v2(0x20|cmdLocal, 0, nil), "hello!"...))
	r = wait(t, results)
	if r.err != nil || r.remote != c.LocalAddr().String() || r.line != "hello!" {
		t.Fatalf("v2 LOCAL: %+v, client %v", r, c.LocalAddr())
	}
}

// A peer outside haproxy_trusted_networks is closed before anything is read, with a log line;
// so is every peer when the list is empty (Dovecot's default).
func TestListenerRefusesUntrusted(t *testing.T) {
	for _, trusted := range []string{"10.0.0.0/8", ""} {
		addr, results, log := startListener(t, trusted, 5*time.Second)
		c := dial(t, addr, "PROXY TCP4 192.0.2.7 198.51.100.1 40000 143\r\nhello!")
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("trusted %q: read %d bytes, want the connection closed", trusted, n)
		}
		select {
		case r := <-results:
			t.Fatalf("trusted %q: an untrusted connection was served: %+v", trusted, r)
		default:
		}
		if !strings.Contains(log.String(), "haproxy: Client not trusted") || !strings.Contains(log.String(), "rip=127.0.0.1") {
			t.Fatalf("trusted %q: log %q", trusted, log.String())
		}
	}
}

// No header, a bad one or none in time: the connection is closed with a log line and the
// server's read fails.
func TestListenerBadOrLateHeader(t *testing.T) {
	addr, results, log := startListener(t, "127.0.0.1/32", 200*time.Millisecond)
	for _, tc := range []struct{ send, logged string }{
		{"a1 LOGIN user pass\r\n", "invalid PROXY protocol header"},
		{"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\nhello!", "invalid PROXY protocol header"},
		{"PROXY TCP4 192.0.2.7", "haproxy: Client timed out"},
	} {
		c := dial(t, addr, tc.send)
		r := wait(t, results)
		if r.err == nil {
			t.Fatalf("%q: served %+v", tc.send, r)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%q: the connection stayed open", tc.send)
		}
		if !strings.Contains(log.String(), tc.logged) {
			t.Fatalf("%q: log %q lacks %q", tc.send, log.String(), tc.logged)
		}
	}
}

// A slow sender stalls only its own connection: Accept keeps returning others meanwhile.
func TestListenerAcceptDoesNotWait(t *testing.T) {
	addr, results, _ := startListener(t, "127.0.0.0/8", 20*time.Second)
	dial(t, addr, "PROXY TCP4 192.0") // never finishes its header
	dial(t, addr, "PROXY TCP4 192.0.2.8 198.51.100.1 40000 143\r\nhello!")
	if r := wait(t, results); r.err != nil || r.remote != "192.0.2.8:40000" {
		t.Fatalf("second connection: %+v", r)
	}
}

// The caller's read deadline, set before the header was read, holds afterwards.
func TestConnKeepsCallersDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := &Conn{Conn: b, policy: NewPolicy(nil, 10*time.Second, nil)}
	go a.Write([]byte("PROXY UNKNOWN\r\n"))
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("read after the header: %v, want the caller's deadline", err)
	}
}
