package netx

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
)

type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fl := &flakyListener{Listener: l, errs: []error{
		&net.OpError{Op: "accept", Err: syscall.EMFILE},
		&net.OpError{Op: "accept", Err: syscall.ECONNABORTED},
	}}
	go func() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := Accept(fl)
	if err != nil {
		t.Fatalf("Accept gave up: %v", err)
	}
	c.Close()
	if len(fl.errs) != 0 {
		t.Fatal("passing errors were not retried")
	}
	l.Close()
	if _, err := Accept(fl); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed listener: %v", err)
	}
}

// TestLimiter: the total and per-IP ceilings hold, a released slot is
// reusable, exempt addresses and unix sockets count only in the total.
func TestLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	trusted := netip.MustParseAddr("192.0.2.9")
	l := &Limiter{}
	l.Set(Limits{Total: 4, PerIP: 2, Exempt: func(ip netip.Addr) bool { return ip == trusted }})
	s1, ok1 := l.Admit(a)
	_, ok2 := l.Admit(a)
	if _, ok := l.Admit(a); !ok1 || !ok2 || ok {
		t.Fatalf("per IP: %v %v %v", ok1, ok2, ok)
	}
	if _, ok := l.Admit(b); !ok {
		t.Fatal("another IP refused")
	}
	if _, ok := l.Admit(trusted); !ok {
		t.Fatal("exempt IP refused")
	}
	if _, ok := l.Admit(netip.Addr{}); ok {
		t.Fatal("total exceeded")
	}
	s1.Release()
	if _, ok := l.Admit(a); !ok {
		t.Fatal("released slot not reusable")
	}
	var none *Limiter
	if _, ok := none.Admit(a); !ok {
		t.Fatal("nil limiter refused")
	}
}
