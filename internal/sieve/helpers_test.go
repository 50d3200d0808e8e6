package sieve

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// fakeBackend is a tiny ManageSieve server: it accepts password "pass" for any user and,
// once logged in, answers LISTSCRIPTS and LOGOUT. It records every line it receives.
type fakeBackend struct {
	l     net.Listener
	caps  []string
	mu    sync.Mutex
	lines []string
}

func newFakeBackend(t *testing.T, caps ...string) *fakeBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if caps == nil {
		caps = []string{`"IMPLEMENTATION" "Dovecot Pigeonhole"`, `"SASL" "PLAIN LOGIN"`, `"VERSION" "1.0"`, `"XCLIENT"`}
	}
	b := &fakeBackend{l: l, caps: caps}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go b.serve(c)
		}
	}()
	return b
}

func (b *fakeBackend) port() int { return b.l.Addr().(*net.TCPAddr).Port }

func (b *fakeBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	bw := bufio.NewWriter(c)
	rd := &reader{br: bufio.NewReader(c), maxCommand: 1 << 16}
	say := func(s ...string) {
		for _, l := range s {
			bw.WriteString(l + "\r\n")
		}
		bw.Flush()
	}
	say(append(b.caps, `OK "Dovecot ready."`)...)
	loggedIn := false
	for {
		pieces, err := rd.readCommand()
		if err != nil {
			return
		}
		var raw []string
		for _, p := range pieces {
			raw = append(raw, p.data)
		}
		b.mu.Lock()
		b.lines = append(b.lines, strings.Join(raw, "|"))
		b.mu.Unlock()
		cmd, err := parseCommand(pieces)
		if err != nil {
			say(`NO "syntax"`)
			continue
		}
		switch {
		case cmd.name == "XCLIENT":
			say(`OK "Updated"`)
		case cmd.name == "LISTSCRIPTS" && loggedIn:
			say(`"test" ACTIVE`, `OK "Listscripts completed."`)
		case cmd.name == "LOGOUT":
			say(`OK "Logout completed."`)
			return
		case cmd.name == "AUTHENTICATE" && !loggedIn && len(cmd.args) == 2:
			dec, _ := base64.StdEncoding.DecodeString(cmd.args[1].s)
			parts := strings.Split(string(dec), "\x00")
			switch {
			case len(parts) != 3:
				say(`NO "Authentication failed."`)
			case parts[1] == "busy":
				say(`NO (TRYLATER) "Mailbox is locked."`)
			case parts[2] == "pass":
				loggedIn = true
				say(`OK "Logged in."`)
			default:
				say(`NO "Authentication failed."`)
			}
		default:
			say(`NO "Unknown command."`)
		}
	}
}

type harness struct {
	t        *testing.T
	srv      *Server
	addr     string
	backend  *fakeBackend
	router   *logintest.Router
	pen      *logintest.Penalties
	sessions *logintest.Sessions
	stats    *logintest.Stats
}

func newHarness(t *testing.T, cfg Config, tweak func(*login.Env, *Server)) *harness {
	t.Helper()
	be := newFakeBackend(t)
	if cfg.BackendPort == 0 {
		cfg.BackendPort = be.port()
	}
	env, r, p, s, st := logintest.Env(netip.MustParseAddr("127.0.0.1"))
	h := &harness{t: t, backend: be, router: r, pen: p, sessions: s, stats: st}
	srv := NewServer(cfg, env)
	if tweak != nil {
		tweak(env, srv)
		srv.env = env.WithDefaults()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Close)
	h.srv, h.addr = srv, l.Addr().String()
	return h
}

// client is a line-oriented ManageSieve client for exact-text assertions.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (h *harness) dial() *client {
	h.t.Helper()
	nc, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	// A safety net against a hung test, not a timing assertion.
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	h.t.Cleanup(func() { nc.Close() })
	return &client{t: h.t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("got  %q\nwant %q", got, w)
		}
	}
}

func (c *client) expectPrefix(want string) string {
	c.t.Helper()
	got := c.line()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("got  %q\nwant prefix %q", got, want)
	}
	return got
}

func (c *client) expectEOF() {
	c.t.Helper()
	if l, err := c.br.ReadString('\n'); err == nil {
		c.t.Fatalf("expected EOF, got %q", l)
	}
}

func waitDone(t *testing.T, s *logintest.Sessions, i int) logintest.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.WaitDone(ctx, i)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}
