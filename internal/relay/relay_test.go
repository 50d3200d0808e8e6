package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type relayResult struct{ in, out int64 }

// relayUnderTest is one of the two relays: goroutines (any stream) and the event loop (plain
// TCP on Linux, through Start). kick ends a session from outside the way login.Conn.Kick does.
type relayUnderTest struct {
	name  string
	start func(t *testing.T, client, backend net.Conn) (kick func(), done <-chan relayResult)
}

// loopDone is the loop relay's done callback as login.Conn.Proxy has it: the session is over, and
// closing the legs is what passes the backend's end on to the client. A kicked client's leg
// stays open for its parting line (which the test writes).
func loopDone(client, backend net.Conn, kicked *atomic.Bool, ch chan<- relayResult) func(in, out int64) {
	return func(in, out int64) {
		backend.Close()
		if !kicked.Load() {
			client.Close()
		}
		ch <- relayResult{in, out}
	}
}

var relays = []relayUnderTest{
	{"goroutines", func(t *testing.T, client, backend net.Conn) (func(), <-chan relayResult) {
		ch := make(chan relayResult, 1)
		go func() {
			in, out := relayGoroutines(client, backend)
			ch <- relayResult{in, out}
		}()
		return func() { backend.Close() }, ch
	}},
	{"loop", func(t *testing.T, client, backend net.Conn) (func(), <-chan relayResult) {
		ch := make(chan relayResult, 1)
		var kicked atomic.Bool
		s := Start(client, backend, loopDone(client, backend, &kicked, ch))
		if s.loop == nil {
			t.Skip("no event loop relay here")
		}
		return func() { kicked.Store(true); s.Kick() }, ch
	}},
}

func eachRelay(t *testing.T, f func(t *testing.T, start func(client, backend net.Conn) (func(), <-chan relayResult))) {
	for _, r := range relays {
		t.Run(r.name, func(t *testing.T) {
			f(t, func(client, backend net.Conn) (func(), <-chan relayResult) { return r.start(t, client, backend) })
		})
	}
}

func waitRelay(t *testing.T, ch <-chan relayResult) relayResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not end")
		return relayResult{}
	}
}

// The client half-closes after its request; the backend still answers in full (more than
// a burst: bulk), then closes.
func TestRelayHalfClose(t *testing.T) {
	eachRelay(t, func(t *testing.T, start func(client, backend net.Conn) (func(), <-chan relayResult)) {
		user, clientLeg := tcpPair(t)
		backendLeg, server := tcpPair(t)
		_, done := start(clientLeg, backendLeg)

		req := bytes.Repeat([]byte("request "), 10000)
		resp := bytes.Repeat([]byte("response"), 500000)
		go func() {
			_, _ = user.Write(req)
			_ = user.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(server)
		if err != nil || !bytes.Equal(got, req) {
			t.Fatalf("backend got %d bytes, err %v", len(got), err)
		}
		go func() {
			_, _ = server.Write(resp)
			_ = server.Close()
		}()
		back, err := io.ReadAll(user)
		if err != nil || !bytes.Equal(back, resp) {
			t.Fatalf("client got %d bytes, err %v", len(back), err)
		}
		r := waitRelay(t, done)
		if r.in != int64(len(req)) || r.out != int64(len(resp)) {
			t.Errorf("counts in=%d out=%d", r.in, r.out)
		}
	})
}

// A kick ends both directions, and the client leg is still writable afterwards so the
// front-end can say goodbye.
func TestRelayKick(t *testing.T) {
	eachRelay(t, func(t *testing.T, start func(client, backend net.Conn) (func(), <-chan relayResult)) {
		user, clientLeg := tcpPair(t)
		backendLeg, server := tcpPair(t)
		kick, done := start(clientLeg, backendLeg)

		if _, err := user.Write([]byte("a NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if _, err := io.ReadFull(server, buf); err != nil {
			t.Fatal(err)
		}
		kick()
		if r := waitRelay(t, done); r.in != 8 {
			t.Errorf("in = %d", r.in)
		}
		if b, err := io.ReadAll(server); err != nil || len(b) != 0 {
			t.Errorf("backend after the kick: %q %v", b, err)
		}
		if _, err := clientLeg.Write([]byte("* BYE kicked\r\n")); err != nil {
			t.Fatalf("client leg not writable: %v", err)
		}
		clientLeg.Close()
		got, _ := io.ReadAll(user)
		if string(got) != "* BYE kicked\r\n" {
			t.Errorf("client got %q", got)
		}
	})
}

// A client reset ends the relay even though the backend stays silent.
func TestRelayClientGone(t *testing.T) {
	eachRelay(t, func(t *testing.T, start func(client, backend net.Conn) (func(), <-chan relayResult)) {
		user, clientLeg := tcpPair(t)
		backendLeg, _ := tcpPair(t)
		_, done := start(clientLeg, backendLeg)
		_ = user.(*net.TCPConn).SetLinger(0)
		user.Close()
		waitRelay(t, done)
	})
}

// TLS legs take the goroutines and still carry data both ways.
func TestRelayTLS(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, server := tcpPair(t)
	cert := testenv.TLSCert(t)
	srvTLS := tls.Server(clientLeg, &tls.Config{Certificates: []tls.Certificate{cert}})
	cliTLS := tls.Client(user, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- srvTLS.Handshake() }()
	if err := cliTLS.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ch := make(chan relayResult, 1)
	if s := Start(srvTLS, backendLeg, func(in, out int64) { ch <- relayResult{in, out} }); s.loop != nil {
		t.Fatal("a TLS leg went to an event loop")
	}
	go func() {
		_, _ = cliTLS.Write([]byte("hello"))
		_ = cliTLS.CloseWrite()
	}()
	got, _ := io.ReadAll(server)
	if string(got) != "hello" {
		t.Fatalf("backend got %q", got)
	}
	_, _ = server.Write([]byte("world"))
	server.Close()
	back, _ := io.ReadAll(cliTLS)
	if string(back) != "world" {
		t.Fatalf("client got %q", back)
	}
	r := waitRelay(t, ch)
	if r.in != 5 || r.out != 5 {
		t.Errorf("counts %+v", r)
	}
}

func TestHandoff(t *testing.T) {
	client, clientPeer := net.Pipe()
	backend, backendPeer := net.Pipe()
	defer client.Close()
	defer clientPeer.Close()
	defer backend.Close()
	defer backendPeer.Close()

	cbr := bufio.NewReader(strings.NewReader("a LOGIN x y\r\nb NOOP\r\n"))
	if _, err := cbr.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	bbr := bufio.NewReader(strings.NewReader(""))

	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(backendPeer, b, len("b NOOP\r\n"))
		got <- string(b[:n])
	}()
	in, out := Handoff(client, cbr, backend, bbr)
	if in != int64(len("b NOOP\r\n")) || out != 0 {
		t.Fatalf("in %d out %d", in, out)
	}
	if s := <-got; s != "b NOOP\r\n" {
		t.Fatalf("backend got %q", s)
	}
}
