package lmtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// fakeBackend is a small LMTP server. It accepts recipients whose local part is in users,
// stores every message it acknowledges per recipient, and can be told to hang up in the
// middle of a message.
type fakeBackend struct {
	l       net.Listener
	users   map[string]bool
	xclient bool // advertise XCLIENT
	// proxy makes the backend read a PROXY header first (haproxy = yes), recorded as
	// "PROXY <src> <dst>" or "PROXY LOCAL".
	proxy atomic.Bool
	// dataReply, when set, answers DATA instead of 354 (a broken backend);
	// the lines that follow are then read as commands.
	dataReply atomic.Pointer[string]
	// dieAfter, when > 0, makes the backend hang up once it has read that many data lines.
	dieAfter atomic.Int32
	// tlsConf, when set, is TLS from the first byte (implicitTLS) or after STARTTLS.
	tlsConf     atomic.Pointer[tls.Config]
	implicitTLS atomic.Bool

	mu      sync.Mutex
	conns   int
	lines   []string            // commands received (not message data)
	stored  map[string][]string // recipient -> messages, as received after unstuffing
	dataSig chan struct{}       // receives a value whenever a DATA line is read
}

func newFakeBackend(t *testing.T, users ...string) *fakeBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{l: l, users: map[string]bool{}, stored: map[string][]string{},
		dataSig: make(chan struct{}, 1<<16)}
	for _, u := range users {
		b.users[u] = true
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
			go b.serve(c)
		}
	}()
	return b
}

func (b *fakeBackend) record(line string) {
	b.mu.Lock()
	b.lines = append(b.lines, line)
	b.mu.Unlock()
}

func (b *fakeBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func (b *fakeBackend) messages(rcpt string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.stored[rcpt]...)
}

func (b *fakeBackend) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	if b.proxy.Load() {
		h, err := proxyproto.Read(c)
		switch {
		case err != nil:
			b.record("PROXY error: " + err.Error())
			return
		case h.Local:
			b.record("PROXY LOCAL")
		default:
			b.record("PROXY " + h.Src.String() + " " + h.Dst.String())
		}
	}
	tlsConf := b.tlsConf.Load()
	if tlsConf != nil && b.implicitTLS.Load() {
		c = tls.Server(c, tlsConf)
	}
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s ...string) {
		for _, l := range s {
			bw.WriteString(l + "\r\n")
		}
		bw.Flush()
	}
	say("220 fake ready")
	var rcpts []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		b.record(line)
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "LHLO":
			caps := []string{"250-fake", "250-8BITMIME", "250-PIPELINING"}
			if b.xclient {
				caps = append(caps, "250-XCLIENT ADDR PORT PROTO HELO LOGIN SESSION TTL TIMEOUT")
			}
			if tlsConf != nil && !b.implicitTLS.Load() {
				caps = append(caps, "250-STARTTLS")
			}
			say(append(caps, "250 ENHANCEDSTATUSCODES")...)
		case "XCLIENT":
			say("220 fake ready")
		case "STARTTLS":
			say("220 2.0.0 Begin TLS")
			c = tls.Server(c, tlsConf)
			br, bw = bufio.NewReader(c), bufio.NewWriter(c)
		case "MAIL":
			rcpts = nil
			say("250 2.1.0 OK")
		case "RCPT":
			addr := strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			local, _, _ := strings.Cut(strings.ToLower(addr), "@")
			local, _, _ = strings.Cut(local, "+")
			if !b.users[local] {
				say("550 5.1.1 <" + addr + "> User doesn't exist: " + addr)
				continue
			}
			rcpts = append(rcpts, addr)
			say("250 2.1.5 OK")
		case "DATA":
			if r := b.dataReply.Load(); r != nil {
				say(*r)
				continue
			}
			say("354 OK")
			msg, ok := b.readData(br)
			if !ok {
				return
			}
			b.mu.Lock()
			for _, r := range rcpts {
				b.stored[r] = append(b.stored[r], msg)
			}
			b.mu.Unlock()
			for _, r := range rcpts {
				say("250 2.0.0 <" + r + "> fakeid Saved")
			}
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("500 5.5.1 Unknown command")
		}
	}
}

// readData reads a dot-terminated message, unstuffed, insisting on CRLF line ends.
func (b *fakeBackend) readData(br *bufio.Reader) (string, bool) {
	var msg strings.Builder
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(line, "\r\n") {
			return "", false
		}
		if line == ".\r\n" {
			return msg.String(), true
		}
		n++
		b.dataSig <- struct{}{}
		if d := int(b.dieAfter.Load()); d > 0 && n >= d {
			return "", false
		}
		msg.WriteString(strings.TrimPrefix(line, "."))
	}
}

// mapRouter routes users by name; unknown users get a temporary failure.
type mapRouter struct {
	mu       sync.Mutex
	users    map[string]netip.Addr
	calls    []string
	confirms []string
}

func (r *mapRouter) Route(_ context.Context, user string) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, user)
	ip, ok := r.users[user]
	if !ok {
		return netip.Addr{}, logintest.TempFail
	}
	return ip, nil
}

func (r *mapRouter) Confirm(user string, _ netip.Addr, accepted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.confirms = append(r.confirms, fmt.Sprintf("%s %v", user, accepted))
}

// rig is a server in front of fake backends that pose as distinct backend IPs.
type rig struct {
	t        *testing.T
	srv      *Server
	addr     string
	router   *mapRouter
	sessions *logintest.Sessions
	stats    *logintest.Stats

	mu     sync.Mutex
	dialed []string // backend addresses dialled
}

// newRig starts a server; backends maps fake backend IPs (10.0.0.x, never dialled for real)
// to fake servers.
func newRig(t *testing.T, cfg Config, backends map[string]*fakeBackend, users map[string]string) *rig {
	return newRigPassdb(t, cfg, backends, users, nil)
}

// newRigPassdb is newRig with a passdb (nil: none, every recipient is proxied).
func newRigPassdb(t *testing.T, cfg Config, backends map[string]*fakeBackend, users map[string]string, pdb login.Passdb) *rig {
	t.Helper()
	r := &rig{t: t, router: &mapRouter{users: map[string]netip.Addr{}},
		sessions: &logintest.Sessions{}, stats: &logintest.Stats{}}
	for u, ip := range users {
		r.router.users[u] = netip.MustParseAddr(ip)
	}
	env := &login.Env{Router: r.router, Sessions: r.sessions, Stats: r.stats, Hostname: "usher.test", Passdb: pdb}
	if cfg.BackendPort == 0 {
		cfg.BackendPort = 24
	}
	r.srv = NewServer(cfg, env)
	r.srv.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		r.mu.Lock()
		r.dialed = append(r.dialed, addr)
		r.mu.Unlock()
		ap := netip.MustParseAddrPort(addr)
		fb, ok := backends[ap.Addr().String()]
		if !ok {
			return nil, fmt.Errorf("connect %s: connection refused", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", fb.l.Addr().String())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go r.srv.Serve(l)
	t.Cleanup(r.srv.Close)
	return r
}

// client is a line-level LMTP client.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (r *rig) dial() *client {
	r.t.Helper()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	cl := &client{t: r.t, c: c, br: bufio.NewReader(c)}
	if g := cl.reply(); !strings.HasPrefix(g, "220 usher.test ") {
		r.t.Fatalf("greeting %q", g)
	}
	return cl
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one reply; multi-line replies come back joined with "|".
func (c *client) reply() string {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var lines []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return strings.Join(append(lines, "EOF"), "|")
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "|")
		}
	}
}

// expect reads one reply and checks its prefix.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	got := c.reply()
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("got %q, want prefix %q", got, prefix)
	}
	return got
}

// cmd sends one command and checks the reply prefix.
func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(prefix)
}
