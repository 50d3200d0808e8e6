package login

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseXCLIENT(t *testing.T) {
	x, ok := ParseXCLIENT("ADDR=::ffff:192.0.2.1 port=99 SESSION=s1 TTL=0 FORWARD=abc junk")
	if !ok || x.Addr != netip.MustParseAddr("192.0.2.1") || x.Port != 99 || x.Session != "s1" || x.TTL != 0 {
		t.Errorf("got %+v %v", x, ok)
	}
	for _, bad := range []string{"ADDR=x", "PORT=0", "PORT=70000", "TTL=-1", "SESSION=" + strings.Repeat("s", 65)} {
		if _, ok := ParseXCLIENT(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if x, ok := ParseXCLIENT(""); !ok || x.TTL != -1 || x.Addr.IsValid() {
		t.Errorf("empty: %+v", x)
	}
}

func TestXClientApply(t *testing.T) {
	remote, session, ttl := netip.MustParseAddrPort("127.0.0.1:1000"), "old", 5
	XClient{TTL: -1}.Apply(&remote, &session, &ttl)
	if remote != netip.MustParseAddrPort("127.0.0.1:1000") || session != "old" || ttl != 5 {
		t.Fatalf("empty XCLIENT changed %v %q %d", remote, session, ttl)
	}
	x, _ := ParseXCLIENT("ADDR=192.0.2.9 SESSION=s2 TTL=0")
	x.Apply(&remote, &session, &ttl)
	if remote != netip.MustParseAddrPort("192.0.2.9:1000") || session != "s2" || ttl != 0 {
		t.Fatalf("got %v %q %d", remote, session, ttl)
	}
	x, _ = ParseXCLIENT("PORT=4711")
	x.Apply(&remote, &session, &ttl)
	if remote != netip.MustParseAddrPort("192.0.2.9:4711") {
		t.Fatalf("got %v", remote)
	}
}

func FuzzParseXCLIENT(f *testing.F) {
	for _, s := range []string{"", "ADDR=192.0.2.1 PORT=1 SESSION=x TTL=4", "addr=::1", "TTL=256", "PORT=0", "junk =x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		x, ok := ParseXCLIENT(args)
		if !ok {
			return
		}
		if x.TTL < -1 || x.TTL > 255 || len(x.Session) > 64 || x.Addr.Is4In6() {
			t.Fatalf("accepted %+v", x)
		}
	})
}
