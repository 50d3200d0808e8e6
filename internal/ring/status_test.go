package ring

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Removed directors are listed until a timer started by the first removal of a batch fires
// (30 s, Dovecot's DIRECTOR_DELAYED_DIR_REMOVE_MSECS); then the whole batch is forgotten.
func TestRemovedListedForAWhile(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newPeerTable(func() time.Time { return now })
	tb.forget(map[string]bool{"a:1": true, "b:1": true, "c:1": true, "d:1": true})
	tb.failed("b:1")
	tb.markRemoved("a:1") // DIRECTOR-REMOVE here at 1000
	now = now.Add(20 * time.Second)
	tb.forget(map[string]bool{"c:1": true, "d:1": true}) // b removed elsewhere, seen at 1020
	got := tb.removedList()
	if len(got) != 2 || got["b:1"] != 1000 || got["a:1"] != 0 {
		t.Fatalf("at +20 s: %v", got)
	}
	now = now.Add(9 * time.Second)
	if got := tb.removedList(); len(got) != 2 {
		t.Fatalf("at +29 s: %v", got)
	}
	now = now.Add(time.Second)
	if got := tb.removedList(); len(got) != 0 {
		t.Fatalf("at +30 s the batch is forgotten: %v", got)
	}
	// a new removal starts a new batch; a director added again is no longer removed
	tb.forget(map[string]bool{"d:1": true})
	if got := tb.removedList(); len(got) != 1 || got["c:1"] != 0 {
		t.Fatalf("new batch: %v", got)
	}
	tb.forget(map[string]bool{"c:1": true, "d:1": true})
	if got := tb.removedList(); len(got) != 0 {
		t.Fatalf("re-added: %v", got)
	}
}

// The buffered columns are bytes written to a peer's connections that it has not received:
// a peer that stops reading makes them grow, and the peak stays once they drain.
func TestBufferedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	defer peer.Close()
	tb := newPeerTable(time.Now)
	c := tb.count("p:1", raw)
	p := tb.get("p:1")
	if now, _ := tb.buffered(p); now != 0 {
		t.Fatalf("idle connection: %d bytes buffered", now)
	}
	// The peer reads nothing: fill the socket until a write would block.
	c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	chunk := make([]byte, 64<<10)
	written := 0
	for {
		n, err := c.Write(chunk)
		written += n
		if err != nil {
			break
		}
	}
	now, peak := tb.buffered(p)
	total, _ := tb.buffered(&tb.total)
	if now <= 0 || peak < now || total < now || now > int64(written) {
		t.Fatalf("after %d unread bytes: buffered %d, peak %d, total %d", written, now, peak, total)
	}
	// The peer reads everything: the queue drains, the peak stays.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for got := 0; got < written; {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			got += n
		}
	}()
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, p2 := tb.buffered(p)
		if now == 0 && p2 == peak {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drained: buffered %d, peak %d (was %d)", now, p2, peak)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	if len(p.conns) != 0 {
		t.Error("closed connection still counted")
	}
}
