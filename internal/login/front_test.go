package login

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// fakeConn is a front-end connection that serves until it is told to stop.
type fakeConn struct {
	nc   net.Conn
	stop chan string
}

func startSet(t *testing.T) (*ConnSet[*fakeConn], net.Listener, chan *fakeConn, chan error) {
	t.Helper()
	s := NewConnSet[*fakeConn]()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *fakeConn, 4)
	served := make(chan error, 1)
	go func() {
		served <- s.Serve(l, func(nc net.Conn) *fakeConn {
			return &fakeConn{nc: nc, stop: make(chan string, 2)}
		}, func(c *fakeConn) {
			started <- c
			<-c.stop
			c.nc.Close()
		})
	}()
	return s, l, started, served
}

func dialSet(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnSetClose(t *testing.T) {
	s, l, started, served := startSet(t)
	dialSet(t, l)
	c := <-started
	s.Close(func(c *fakeConn) { c.stop <- "kick" })
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-s.Stopping():
	default:
		t.Fatal("Stopping not closed")
	}
	if s.Sleep(1 << 40) {
		t.Fatal("Sleep did not end at close")
	}
	if len(c.stop) != 0 {
		t.Fatal("kick not consumed")
	}
	// A listener handed over after close is closed at once.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l2, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Accept(); err == nil {
		t.Fatal("listener still open")
	}
}

func TestConnSetShutdownDrains(t *testing.T) {
	s, l, started, served := startSet(t)
	dialSet(t, l)
	<-started
	var drained, kicked int
	err := s.Shutdown(context.Background(), func(c *fakeConn) {
		drained++
		c.stop <- "drain"
	}, func(*fakeConn) { kicked++ })
	if err != nil || drained != 1 || kicked != 0 {
		t.Fatalf("err %v drained %d kicked %d", err, drained, kicked)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestConnSetShutdownKicksWhenCtxEnds(t *testing.T) {
	s, l, started, served := startSet(t)
	dialSet(t, l)
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var kicked int
	err := s.Shutdown(ctx, func(*fakeConn) {}, func(c *fakeConn) {
		kicked++
		c.stop <- "kick"
	})
	if err != context.Canceled || kicked != 1 {
		t.Fatalf("err %v kicked %d", err, kicked)
	}
	<-served
}

// Busy workers never hold up a new connection: each job that finds no idle worker gets one of
// its own, so jobs that wait for each other all run.
func TestRunWorkerNeverWaitsForABusyWorker(t *testing.T) {
	const n = 20
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	for range n {
		runWorker(func() {
			started.Done()
			<-release
		})
	}
	waited := make(chan struct{})
	go func() { started.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("jobs did not all run at once")
	}
	close(release)
	// a job after them still runs, on a worker now idle or a new one
	ran := make(chan struct{})
	runWorker(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a job after the others did not run")
	}
}

// On a listener with haproxy = yes the header is read on a worker, not in the accept loop (a
// balancer stalling on one header holds up no other connection), and the per-IP ceiling
// counts the client the header carried, not the balancer.
func TestConnSetPROXYHeader(t *testing.T) {
	s := NewConnSet[*fakeConn]()
	lim := &netx.Limiter{}
	lim.Set(netx.Limits{PerIP: 1})
	s.SetLimiter(lim, "BUSY\r\n")
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	policy := proxyproto.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, time.Minute, nil)
	l := &proxyproto.Listener{Listener: tl, Policy: policy}
	started := make(chan *fakeConn, 4)
	go s.Serve(l, func(nc net.Conn) *fakeConn {
		return &fakeConn{nc: nc, stop: make(chan string, 2)}
	}, func(c *fakeConn) {
		started <- c
		<-c.stop
		c.nc.Close()
	})
	defer s.Close(func(c *fakeConn) { c.stop <- "kick" })
	next := func() *fakeConn {
		select {
		case c := <-started:
			return c
		case <-time.After(20 * time.Second):
			t.Fatal("no connection was served")
		}
		return nil
	}

	dialSet(t, tl).Write([]byte("PROXY TCP4 192.0.2.9")) // never finishes its header
	dialSet(t, tl).Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.100 40000 143\r\n"))
	if c := next(); c.nc.RemoteAddr().String() != "192.0.2.1:40000" {
		t.Fatalf("served %v, want the carried 192.0.2.1:40000", c.nc.RemoteAddr())
	}
	again := dialSet(t, tl)
	again.Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.100 40001 143\r\n"))
	again.SetReadDeadline(time.Now().Add(20 * time.Second))
	if b, _ := io.ReadAll(again); string(b) != "BUSY\r\n" {
		t.Fatalf("a second connection of 192.0.2.1 got %q, want the per-IP refusal", b)
	}
	dialSet(t, tl).Write([]byte("PROXY TCP4 192.0.2.2 192.0.2.100 40000 143\r\n"))
	if c := next(); c.nc.RemoteAddr().String() != "192.0.2.2:40000" {
		t.Fatalf("served %v, want 192.0.2.2:40000", c.nc.RemoteAddr())
	}
}
