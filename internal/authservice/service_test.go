package authservice

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/passdb"
)

func TestParseMasterReply(t *testing.T) {
	for line, want := range map[string]passdb.Reply{
		"PASS\t3\tuser=bob\tproxy=y\thost=10.0.0.2\tport=1143\tpass=a\x01tb": {OK: true, User: "bob", Fields: []string{"proxy=y", "host=10.0.0.2", "port=1143", "pass=a\tb"}},
		"PASS\t3\tproxy":                    {OK: true, Fields: []string{"proxy"}},
		"NOTFOUND\t3":                       {},
		"FAIL\t3":                           {Temp: true},
		"FAIL\t3\treason=db down\tuser=bob": {Temp: true, Reason: "db down", Fields: []string{"reason=db down", "user=bob"}},
	} {
		id, got, err := ParseMasterReply(line)
		if err != nil || id != 3 || !equal(got, want) || len(got.Fields) != len(want.Fields) {
			t.Errorf("%q: %d %+v %v", line, id, got, err)
		}
	}
	for _, bad := range []string{"", "PASS", "PASS\t0", "PASS\t03", "PASS\tx", "NOTFOUND\t1\tuser=a", "USER\t1\tuser=a",
		"PASS\t1\t=x", "PASS\t4294967296", strings.Repeat("x", maxMasterLine+1)} {
		if _, r, err := ParseMasterReply(bad); !errors.Is(err, errMasterProtocol) {
			t.Errorf("%.40q accepted: %+v %v", bad, r, err)
		}
	}
}

// FuzzParseMasterReply: no panic; an accepted answer has a non-zero id, is never both OK and
// temporary, and has no field without a name.
func FuzzParseMasterReply(f *testing.F) {
	for _, s := range []string{"PASS\t1\tuser=a\tproxy", "NOTFOUND\t2", "FAIL\t3\treason=x", "PASS\t1\tk=\x01t\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		id, r, err := ParseMasterReply(line)
		if err != nil {
			return
		}
		if id == 0 || r.OK && r.Temp || slices.ContainsFunc(r.Fields, func(s string) bool { return s == "" || s[0] == '=' }) {
			t.Fatalf("%q -> %d %+v", line, id, r)
		}
	})
}

// silentService accepts connections on a unix socket and answers nothing: a hung auth
// service. Each accepted connection is reported.
func silentService(t *testing.T) (config.Endpoint, <-chan net.Conn) {
	path := filepath.Join(t.TempDir(), "auth")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return config.Endpoint{Network: "unix", Addr: path}, conns
}

// A service that accepts but never answers: the caller's deadline ends the wait as a
// temporary failure, for logins and lookups alike; and the in-flight bound makes a request
// beyond it wait for a slot, then give up as unavailable without touching the service.
func TestHungService(t *testing.T) {
	ep, _ := silentService(t)
	s := New(ep, ep)
	defer s.Close()
	for _, req := range []passdb.Request{{Service: "imap", User: "u", Pass: "p", Mech: "PLAIN"}, {Service: "lmtp", User: "u"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		r, err := s.Authenticate(ctx, req)
		cancel()
		if !errors.Is(err, ErrUnavailable) || !r.Temp || r.OK {
			t.Errorf("%q: %+v %v", req.Mech, r, err)
		}
	}

	// One slot; the handshake the first request waits in holds it.
	ep, conns := silentService(t)
	s = New(ep, config.Endpoint{})
	defer s.Close()
	s.slots = make(chan struct{}, 1)
	first := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := s.Authenticate(ctx, passdb.Request{Service: "imap", User: "u", Pass: "p", Mech: "PLAIN"})
		first <- err
	}()
	var c net.Conn
	select {
	case c = <-conns:
	case <-time.After(30 * time.Second):
		t.Fatal("the first request never connected")
	}
	// the handshake's first line shows the first request is inside
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "VERSION\t1\t") {
		t.Fatalf("handshake %q %v", line, err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if r, err := s.Authenticate(ctx2, passdb.Request{Service: "imap", User: "v", Pass: "p", Mech: "PLAIN"}); !errors.Is(err, ErrUnavailable) ||
		!strings.Contains(err.Error(), "in flight") || !r.Temp {
		t.Errorf("beyond the bound: %+v %v", r, err)
	}
	select {
	case c := <-conns:
		t.Errorf("a request beyond the bound connected: %v", c.LocalAddr())
	default:
	}
	cancel()
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Errorf("first request: %v", err)
	}
	// a lookup without an auth-master listener is unavailable, said so
	if _, err := s.Authenticate(context.Background(), passdb.Request{Service: "lmtp", User: "u"}); !errors.Is(err, ErrUnavailable) ||
		!strings.Contains(err.Error(), "auth_socket_path") {
		t.Errorf("lookup without auth-master: %v", err)
	}
}
