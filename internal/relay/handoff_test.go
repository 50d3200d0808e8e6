package relay

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

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
