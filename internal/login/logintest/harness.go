package logintest

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
)

// Front is a running front-end server (IMAP, POP3, ManageSieve).
type Front interface {
	Serve(net.Listener) error
	Close()
}

// Fakes are the fakes behind a front-end's login.Env, for tests to inspect.
type Fakes struct {
	Router   *Router
	Pen      *Penalties
	Sessions *Sessions
	Stats    *Stats
}

// NewEnv returns an Env whose router sends every user to 127.0.0.1, and its fakes.
func NewEnv() (*login.Env, Fakes) {
	env, r, p, s, st := Env(netip.MustParseAddr("127.0.0.1"))
	return env, Fakes{Router: r, Pen: p, Sessions: s, Stats: st}
}

// Serve runs srv on a fresh loopback listener until the test ends and returns its address.
func Serve(t testing.TB, srv Front) string {
	t.Helper()
	l := Listen(t)
	go srv.Serve(l)
	t.Cleanup(srv.Close)
	return l.Addr().String()
}

// Listen returns a loopback listener closed when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Backend is the listening half of a protocol's fake backend: it accepts connections, hands
// each to the protocol's serve on its own goroutine, and records the lines serve reports.
type Backend struct {
	l     net.Listener
	mu    sync.Mutex
	lines []string
}

// NewBackend starts a fake backend whose connections run serve; it stops when the test ends.
func NewBackend(t testing.TB, serve func(net.Conn)) *Backend {
	t.Helper()
	b := &Backend{l: Listen(t)}
	go func() {
		for {
			c, err := b.l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return b
}

// Port is the backend's port.
func (b *Backend) Port() int { return b.l.Addr().(*net.TCPAddr).Port }

// Record notes a line the backend received.
func (b *Backend) Record(line string) {
	b.mu.Lock()
	b.lines = append(b.lines, line)
	b.mu.Unlock()
}

// Received returns the lines recorded so far.
func (b *Backend) Received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// Client is a line-oriented client for exact-text assertions on a front-end.
type Client struct {
	t  testing.TB
	NC net.Conn
	BR *bufio.Reader
}

// Dial connects to addr; the connection is closed when the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	return DialFrom(t, "", addr)
}

// DialFrom is Dial from the local address from (a loopback IP; "" lets the system choose).
func DialFrom(t testing.TB, from, addr string) *Client {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A safety net against a hung test, not a timing assertion.
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &Client{t: t, NC: nc, BR: bufio.NewReader(nc)}
}

// Send writes s and CRLF.
func (c *Client) Send(s string) {
	c.t.Helper()
	if _, err := c.NC.Write([]byte(s + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// Line reads one line, without its CRLF.
func (c *Client) Line() string {
	c.t.Helper()
	l, err := c.BR.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Expect reads one line per want and fails unless each is exactly its want.
func (c *Client) Expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.Line(); got != w {
			c.t.Fatalf("got  %q\nwant %q", got, w)
		}
	}
}

// ExpectPrefix reads one line, fails unless it starts with want, and returns it.
func (c *Client) ExpectPrefix(want string) string {
	c.t.Helper()
	got := c.Line()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("got  %q\nwant prefix %q", got, want)
	}
	return got
}

// ExpectEOF fails unless the server closes the connection before another line.
func (c *Client) ExpectEOF() {
	c.t.Helper()
	if l, err := c.BR.ReadString('\n'); err == nil {
		c.t.Fatalf("expected EOF, got %q", l)
	}
}

// StartTLS runs a TLS handshake (any certificate accepted) on the connection, once the
// server has agreed to it; bytes the server sent in plaintext after its agreement are lost.
func (c *Client) StartTLS() {
	c.t.Helper()
	tc := tls.Client(c.NC, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.NC, c.BR = tc, bufio.NewReader(tc)
}

// WaitDone waits (30 s at most) for the i-th registered session to end and returns it.
func WaitDone(t testing.TB, s *Sessions, i int) Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.WaitDone(ctx, i)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// Harness is a front-end under test: its server S on loopback, the fakes behind its Env and
// the protocol's fake backend B.
type Harness[S Server, B interface{ Port() int }] struct {
	Fakes
	T       *testing.T
	Srv     S
	Addr    string
	Backend B
}

// Server is a front-end a Harness runs.
type Server interface {
	Front
	Shutdown(context.Context) error
}

// NewHarness serves the front-end newServer builds on a fresh Env until the test ends: tweak,
// when set, adjusts the Env first, each of with the server before it serves. newServer gets
// the Env and the backend's port.
func NewHarness[S Server, B interface{ Port() int }](t *testing.T, backend B, tweak func(*login.Env),
	newServer func(env *login.Env, backendPort int) S, with ...func(S)) *Harness[S, B] {
	t.Helper()
	env, fakes := NewEnv()
	if tweak != nil {
		tweak(env)
	}
	srv := newServer(env, backend.Port())
	for _, w := range with {
		w(srv)
	}
	return &Harness[S, B]{Fakes: fakes, T: t, Srv: srv, Addr: Serve(t, srv), Backend: backend}
}

// Dial connects a client to the front-end.
func (h *Harness[S, B]) Dial() *Client { return Dial(h.T, h.Addr) }

// Running is the harness as logintest.RunCore's Dialect.Start returns it.
func (h *Harness[S, B]) Running() Running {
	return Running{Fakes: h.Fakes, Addr: h.Addr, Srv: h.Srv}
}
