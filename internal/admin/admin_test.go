package admin

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/router"
)

// fakeDirector records calls and answers from fixed data.
type fakeDirector struct {
	calls []string
	err   error
}

func (f *fakeDirector) Hosts() []router.HostStatus {
	return []router.HostStatus{
		{Host: cluster.Host{Host: director.Host{IP: netip.MustParseAddr("10.0.0.1"), VhostCount: 100}}, Users: 3},
		{Host: cluster.Host{Host: director.Host{IP: netip.MustParseAddr("10.0.0.2"), VhostCount: 50, Tag: "t\tx", Down: true}, LastUpDown: 1700000000}},
	}
}
func (f *fakeDirector) RemovedHosts() []netip.Addr {
	return []netip.Addr{netip.MustParseAddr("10.0.0.9")}
}
func (f *fakeDirector) rec(s string) error { f.calls = append(f.calls, s); return f.err }
func (f *fakeDirector) SetHost(ctx context.Context, ip netip.Addr, tag string, v int, update bool) error {
	return f.rec("set " + ip.String() + "@" + tag + " " + itoa(v))
}
func (f *fakeDirector) SetDown(ctx context.Context, ip netip.Addr, down bool) error {
	return f.rec("down " + ip.String())
}
func (f *fakeDirector) RemoveHost(ctx context.Context, ip netip.Addr) error {
	return f.rec("remove " + ip.String())
}
func (f *fakeDirector) FlushHost(ctx context.Context, ip *netip.Addr) error { return f.rec("flush") }
func (f *fakeDirector) ResetUsers(ctx context.Context, ip *netip.Addr, n int) error {
	return f.rec("reset " + itoa(n))
}
func (f *fakeDirector) LookupUser(u, tag string) (router.Lookup, error) {
	return router.Lookup{Hashed: netip.MustParseAddr("10.0.0.1"), Initial: netip.MustParseAddr("10.0.0.1")}, nil
}
func (f *fakeDirector) Users(ip *netip.Addr) []router.UserEntry {
	return []router.UserEntry{{Hash: 42, Expire: 1700000900, Host: netip.MustParseAddr("10.0.0.1")}}
}
func (f *fakeDirector) Move(ctx context.Context, u string, ip netip.Addr) error {
	return f.rec("move " + u + " " + ip.String())
}
func (f *fakeDirector) Kick(ctx context.Context, u string) error { f.rec("kick " + u); return nil }

func itoa(n int) string { return strconv.Itoa(n) }

// session runs the protocol over a pipe and returns a line-oriented client
// that has done the handshake.
func session(t *testing.T, d Director) (*bufio.Reader, net.Conn) {
	t.Helper()
	s := NewServer(d, NewLocalRing(netip.MustParseAddrPort("127.0.0.10:9090")), nil)
	c := s.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// Read the greeting first, then answer synchronously: a handshake written from a goroutine
	// could be overtaken by the test's first command on the unbuffered pipe.
	if l, _ := r.ReadString('\n'); l != greeting+"\n" {
		t.Fatalf("greeting %q", l)
	}
	if _, err := c.Write([]byte("VERSION\tdirector-doveadm\t1\t0\n")); err != nil {
		t.Fatal(err)
	}
	return r, c
}

func roundTrip(t *testing.T, r *bufio.Reader, c net.Conn, line string, multi bool) []string {
	t.Helper()
	go c.Write([]byte(line + "\n"))
	var out []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return append(out, "EOF")
		}
		l = strings.TrimSuffix(l, "\n")
		if multi && l == "" {
			return out
		}
		out = append(out, l)
		if !multi {
			return out
		}
	}
}

func TestHostListAndLookup(t *testing.T) {
	r, c := session(t, &fakeDirector{})
	got := roundTrip(t, r, c, "HOST-LIST", true)
	want := []string{"10.0.0.1\t100\t3\t\tU\t0", "10.0.0.2\t50\t0\tt\x01tx\tD\t1700000000"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("HOST-LIST = %q, want %q", got, want)
	}
	if got := roundTrip(t, r, c, "HOST-LIST-REMOVED", true); len(got) != 1 || got[0] != "10.0.0.9" {
		t.Fatalf("HOST-LIST-REMOVED = %q", got)
	}
	if got := roundTrip(t, r, c, "USER-LOOKUP\tuser001", false); got[0] != "\t0\t10.0.0.1\t10.0.0.1" {
		t.Fatalf("USER-LOOKUP = %q", got)
	}
	if got := roundTrip(t, r, c, "USER-LIST", true); len(got) != 1 || got[0] != "42\t1700000900\t10.0.0.1" {
		t.Fatalf("USER-LIST = %q", got)
	}
	if got := roundTrip(t, r, c, "DIRECTOR-LIST", true); len(got) != 1 || got[0] != "127.0.0.10\t9090\tself\t0\tring synced\t0" {
		t.Fatalf("DIRECTOR-LIST = %q", got)
	}
}

// Each command answers as Dovecot's director does and reaches the director as exactly one
// call with the arguments the line carried.
func TestReplies(t *testing.T) {
	d := &fakeDirector{}
	r, c := session(t, d)
	cases := []struct{ line, want, call string }{
		{"HOST-SET\t10.0.0.5@tag\t7", "OK", "set 10.0.0.5@tag 7"},
		{"HOST-SET\t10.0.0.5\t1001", "vhost count too large", ""},
		{"HOST-DOWN\t10.0.0.5", "OK", "down 10.0.0.5"},
		{"HOST-RESET-USERS\t\t5", "OK", "reset 5"},
		{"USER-MOVE\talice\t10.0.0.1", "OK", "move alice 10.0.0.1"},
		{"USER-KICK\talice", "OK", "kick alice"},
		{"DIRECTOR-ADD\t127.0.0.14", "OK", ""},
		{"DIRECTOR-REMOVE\t10.9.9.9\t9090", "NOTFOUND", ""},
	}
	for _, tc := range cases {
		before := len(d.calls)
		if got := roundTrip(t, r, c, tc.line, false); got[0] != tc.want {
			t.Fatalf("%q -> %q, want %q", tc.line, got, tc.want)
		}
		var want []string
		if tc.call != "" {
			want = []string{tc.call}
		}
		if got := d.calls[before:]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%q called the director with %q, want %q", tc.line, got, want)
		}
	}
	d.err = router.ErrNotFound
	if got := roundTrip(t, r, c, "HOST-UP\t10.0.0.7", false); got[0] != "NOTFOUND" {
		t.Fatalf("HOST-UP unknown -> %q", got)
	}
	d.err = router.ErrTryAgain
	if got := roundTrip(t, r, c, "USER-MOVE\talice\t10.0.0.1", false); got[0] != "TRYAGAIN" {
		t.Fatalf("USER-MOVE busy -> %q", got)
	}
}

// Invalid input closes the connection, as Dovecot's director does, and
// changes nothing.
func TestInvalidClosesConnection(t *testing.T) {
	for _, line := range []string{"", "BOGUS", "HOST-SET\tnot-an-ip", "HOST-SET", "USER-MOVE\tx", "HOST-RESET-USERS\t\t0"} {
		d := &fakeDirector{}
		r, c := session(t, d)
		if got := roundTrip(t, r, c, line, false); got[0] != "EOF" {
			t.Fatalf("%q -> %q, want the connection closed", line, got)
		}
		if len(d.calls) != 0 {
			t.Fatalf("%q changed state: %v", line, d.calls)
		}
	}
}

func TestBadHandshake(t *testing.T) {
	s := NewServer(&fakeDirector{}, NewLocalRing(netip.MustParseAddrPort("127.0.0.10:9090")), nil)
	defer s.Close()
	c := s.Pipe()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	go c.Write([]byte("VERSION\tdirector-doveadm\t2\t0\nHOST-LIST\n"))
	r.ReadString('\n')
	if l, err := r.ReadString('\n'); err == nil {
		t.Fatalf("answered %q after an incompatible handshake", l)
	}
}

// FuzzCommandLine feeds arbitrary lines to the command dispatcher: it must
// never panic, and a line it rejects must not have reached the director.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{"HOST-LIST", "HOST-SET\t10.0.0.1@t\t5", "USER-LOOKUP\tu\ttag", "HOST-RESET-USERS\t\t3",
		"DIRECTOR-ADD\t::1\t9", "USER-KICK-ALT\tf\tv", "HOST-FLUSH\t", "\x01\t\x01", "HOST-UPDATE\t1.2.3.4\t99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d := &fakeDirector{}
		s := NewServer(d, NewLocalRing(netip.MustParseAddrPort("127.0.0.10:9090")), nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, ok := s.exec(ctx, line)
		if !ok && len(d.calls) != 0 {
			t.Fatalf("rejected %q but called %v", line, d.calls)
		}
	})
}

// TestConnectionCeiling: a TCP client past the ceiling is closed without a
// greeting; the first one is served.
func TestConnectionCeiling(t *testing.T) {
	s := NewServer(&fakeDirector{}, NewLocalRing(netip.MustParseAddrPort("127.0.0.1:9090")), nil)
	s.Limiter = &netx.Limiter{}
	s.Limiter.Set(netx.Limits{PerIP: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	read := func() (string, error) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	if line, err := read(); err != nil || !strings.HasPrefix(line, "VERSION\t") {
		t.Fatalf("first: %q %v", line, err)
	}
	if line, err := read(); err == nil {
		t.Fatalf("second got %q", line)
	}
}
