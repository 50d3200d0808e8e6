package imap

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

// fakeBackend is a tiny IMAP server: it accepts password "pass" for any user and, once logged
// in, answers NOOP and LOGOUT. It records every line it receives.
type fakeBackend struct {
	l      net.Listener
	banner string
	mu     sync.Mutex
	lines  []string
}

func newFakeBackend(t *testing.T, banner string) *fakeBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if banner == "" {
		banner = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID LITERAL+ AUTH=PLAIN] ready."
	}
	b := &fakeBackend{l: l, banner: banner}
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
	say := func(s string) { bw.WriteString(s + "\r\n"); bw.Flush() }
	rd := &reader{br: bufio.NewReader(c), maxCommand: 1 << 16, maxLiteral: 1 << 16,
		cont: func() error { say("+ OK"); return nil }}
	say(b.banner)
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
			say(cmd.tag + " BAD syntax")
			continue
		}
		user, pass := "", ""
		switch {
		case cmd.name == "CAPABILITY":
			say("* CAPABILITY " + strings.TrimSuffix(strings.TrimPrefix(b.banner, "* OK [CAPABILITY "), "] ready."))
			say(cmd.tag + " OK done")
			continue
		case cmd.name == "ID":
			say("* ID NIL")
			say(cmd.tag + " OK ID completed.")
			continue
		case cmd.name == "NOOP":
			say(cmd.tag + " OK NOOP done")
			continue
		case cmd.name == "LOGOUT":
			say("* BYE bye")
			say(cmd.tag + " OK Logout completed.")
			return
		case cmd.name == "LOGIN" && !loggedIn:
			user, pass = cmd.args[0].s, cmd.args[1].s
		case cmd.name == "AUTHENTICATE" && !loggedIn:
			ir := ""
			if len(cmd.args) == 2 {
				ir = cmd.args[1].s
			} else {
				say("+ ")
				ir, _ = rd.readLine(1 << 16)
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			if parts := strings.Split(string(dec), "\x00"); len(parts) == 3 {
				user, pass = parts[1], parts[2]
			}
		default:
			say(cmd.tag + " BAD unknown")
			continue
		}
		switch {
		case user == "busy":
			say(cmd.tag + " NO [INUSE] Mailbox is locked.")
		case user == "tempfail":
			say(cmd.tag + " NO [UNAVAILABLE] Internal error occurred.")
		case pass == "pass" || pass == "p\"a\\ss" || pass == "pässwörd":
			loggedIn = true
			say("* OK untagged noise")
			say(cmd.tag + " OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
		default:
			say(cmd.tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
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
	be := newFakeBackend(t, "")
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

// client is a line-oriented IMAP client for exact-text assertions.
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

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got  %q\nwant %q", got, want)
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
