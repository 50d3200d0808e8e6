package relay

import (
	"crypto/sha256"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func startLoop(t *testing.T, client, backend net.Conn) (*loopRelay, <-chan relayResult) {
	t.Helper()
	ch := make(chan relayResult, 1)
	r := startLoopRelay(client, backend, loopDone(client, backend, new(atomic.Bool), ch))
	if r == nil {
		t.Fatal("no event loop relay for plain TCP legs")
	}
	return r, ch
}

func onGoroutine(r *loopRelay, which int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dirs[which].goroutine
}

// sendQueue is how many bytes c's socket holds that its peer has not acknowledged.
func sendQueue(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A client that stops reading makes the loop hand the direction to a goroutine, which waits
// for it; nothing is lost or reordered.
func TestLoopRelayBackpressure(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, server := tcpPair(t)
	r, done := startLoop(t, clientLeg, backendLeg)

	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	go func() {
		for off := 0; off < len(data); off += 1000 { // many small bursts
			_, _ = server.Write(data[off:min(off+1000, len(data))])
		}
		server.Close()
	}()
	// The client reads nothing until it is behind: the loop has handed its direction to a
	// goroutine and the kernel holds bytes the client has not taken.
	for deadline := time.Now().Add(10 * time.Second); !onGoroutine(r, toClient) || sendQueue(t, clientLeg) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client's direction never backed up onto a goroutine")
		}
	}
	back, err := io.ReadAll(user)
	if err != nil || sha256.Sum256(back) != sha256.Sum256(data) {
		t.Fatalf("client got %d of %d bytes, err %v", len(back), len(data), err)
	}
	if r := waitRelay(t, done); r.out != int64(len(data)) {
		t.Errorf("out = %d", r.out)
	}
}

// Short exchanges, one at a time, are what the loop serves itself.
func TestLoopRelayPingPong(t *testing.T) {
	user, clientLeg := tcpPair(t)
	backendLeg, server := tcpPair(t)
	_, done := startLoop(t, clientLeg, backendLeg)
	buf := make([]byte, 64)
	for i := range 500 {
		msg := []byte("a NOOP\r\n")
		if _, err := user.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf[:len(msg)]); err != nil {
			t.Fatal(i, err)
		}
		if _, err := server.Write([]byte("a OK\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(user, buf[:6]); err != nil || string(buf[:6]) != "a OK\r\n" {
			t.Fatalf("round %d: %q %v", i, buf[:6], err)
		}
	}
	server.Close()
	r := waitRelay(t, done)
	if r.in != 500*8 || r.out != 500*6 {
		t.Errorf("counts %+v", r)
	}
}

// Idle sessions cost no goroutine: that is the point of the loop.
func TestLoopRelayIdleSessionsHoldNoGoroutines(t *testing.T) {
	const n = 100
	type leg struct{ user, server net.Conn }
	legs := make([]leg, n)
	dones := make([]<-chan relayResult, n)
	before := runtime.NumGoroutine()
	for i := range legs {
		user, clientLeg := tcpPair(t)
		backendLeg, server := tcpPair(t)
		legs[i] = leg{user, server}
		_, dones[i] = startLoop(t, clientLeg, backendLeg)
	}
	// traffic once, then idle
	for _, l := range legs {
		_, _ = l.user.Write([]byte("x"))
		b := make([]byte, 1)
		_, _ = io.ReadFull(l.server, b)
	}
	// The traffic's goroutines (if any) may still be winding down: wait for them, bounded.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		grown := runtime.NumGoroutine() - before
		if grown <= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle sessions hold %d goroutines", n, grown)
		}
	}
	for i, l := range legs {
		l.server.Close()
		waitRelay(t, dones[i])
	}
}
