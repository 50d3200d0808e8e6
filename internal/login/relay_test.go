package login

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

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

func startRelay(client, backend net.Conn) <-chan relayResult {
	ch := make(chan relayResult, 1)
	go func() {
		in, out := Relay(client, backend)
		ch <- relayResult{in, out}
	}()
	return ch
}

// The client half-closes after its request; the backend still answers in full, then closes.
func TestRelayHalfClose(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, server := tcpPair(t)
	done := startRelay(clientLeg, backendLeg)

	req := bytes.Repeat([]byte("request "), 10000)
	resp := bytes.Repeat([]byte("response"), 50000)
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
	r := <-done
	if r.in != int64(len(req)) || r.out != int64(len(resp)) {
		t.Errorf("counts in=%d out=%d", r.in, r.out)
	}
}

// Closing the backend leg (what a kick does) ends both directions, and the client leg is still
// writable afterwards so the front-end can say goodbye.
func TestRelayKick(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, server := tcpPair(t)
	done := startRelay(clientLeg, backendLeg)

	if _, err := user.Write([]byte("a NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	backendLeg.Close()
	r := <-done
	if r.in != 8 {
		t.Errorf("in = %d", r.in)
	}
	if _, err := clientLeg.Write([]byte("* BYE kicked\r\n")); err != nil {
		t.Fatalf("client leg not writable: %v", err)
	}
	clientLeg.Close()
	got, _ := io.ReadAll(user)
	if string(got) != "* BYE kicked\r\n" {
		t.Errorf("client got %q", got)
	}
}

// A client reset ends the relay even though the backend stays silent.
func TestRelayClientGone(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, _ := tcpPair(t)
	done := startRelay(clientLeg, backendLeg)
	_ = user.(*net.TCPConn).SetLinger(0)
	user.Close()
	<-done
}

// TLS legs take the generic path and still carry data both ways.
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
	done := startRelay(srvTLS, backendLeg)
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
	r := <-done
	if r.in != 5 || r.out != 5 {
		t.Errorf("counts %+v", r)
	}
}
