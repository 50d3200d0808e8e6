package netx

import (
	"net/netip"
	"testing"
)

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
