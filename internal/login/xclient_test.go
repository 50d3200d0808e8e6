package login

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
)

func TestParseXCLIENT(t *testing.T) {
	x, ok := ParseXCLIENT("ADDR=::ffff:192.0.2.1 port=99 SESSION=s1 TTL=0 FORWARD=YT1i junk")
	if !ok || x.Addr != netip.MustParseAddr("192.0.2.1") || x.Port != 99 || x.Session != "s1" || x.TTL != 0 || strings.Join(x.Forward, "|") != "a=b" {
		t.Errorf("got %+v %v", x, ok)
	}
	for _, bad := range []string{"ADDR=x", "FORWARD=abc", "PORT=0", "PORT=70000", "TTL=-1", "SESSION=" + strings.Repeat("s", 65)} {
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
	var fwd []string
	XClient{TTL: -1}.Apply(&remote, &session, &ttl, &fwd)
	if remote != netip.MustParseAddrPort("127.0.0.1:1000") || session != "old" || ttl != 5 {
		t.Fatalf("empty XCLIENT changed %v %q %d", remote, session, ttl)
	}
	x, _ := ParseXCLIENT("ADDR=192.0.2.9 SESSION=s2 TTL=0")
	x.Apply(&remote, &session, &ttl, &fwd)
	if remote != netip.MustParseAddrPort("192.0.2.9:1000") || session != "s2" || ttl != 0 {
		t.Fatalf("got %v %q %d", remote, session, ttl)
	}
	x, _ = ParseXCLIENT("PORT=4711")
	x.Apply(&remote, &session, &ttl, &fwd)
	if remote != netip.MustParseAddrPort("192.0.2.9:4711") || fwd != nil {
		t.Fatalf("got %v %q", remote, fwd)
	}
	x, _ = ParseXCLIENT("FORWARD=" + EncodeForward([]string{"a=1", "b=x\ty"}))
	x.Apply(&remote, &session, &ttl, &fwd)
	if strings.Join(fwd, "|") != "a=1|b=x\ty" {
		t.Fatalf("forward fields %q", fwd)
	}
}

// FORWARD= as Dovecot writes it: base64 of TAB-joined fields, each tab-escaped with \001.
func TestForwardEncoding(t *testing.T) {
	fields := []string{"ip=192.0.2.1", "note=a\tb\x01c\r\n", "empty="}
	enc := EncodeForward(fields)
	raw, _ := base64.StdEncoding.DecodeString(enc)
	if want := "ip=192.0.2.1\tnote=a\x01tb\x011c\x01r\x01n\tempty="; string(raw) != want {
		t.Errorf("encoded %q, want %q", raw, want)
	}
	got, ok := DecodeForward(enc)
	if !ok || strings.Join(got, "|") != strings.Join(fields, "|") {
		t.Errorf("round trip %q %v", got, ok)
	}
	if _, ok := DecodeForward("not base64!"); ok {
		t.Error("bad base64 accepted")
	}
	if got := MergeForward([]string{"a=client", "b=client"}, []string{"A=passdb"}); strings.Join(got, "|") != "b=client|A=passdb" {
		t.Errorf("merge %q", got)
	}
	long := []string{strings.Repeat("x", 600) + "=1", strings.Repeat("y", 600) + "=2"}
	if got := MergeForward(nil, long); len(got) != 1 {
		t.Errorf("%d fields past the bound kept", len(got))
	}
}

func FuzzParseXCLIENT(f *testing.F) {
	for _, s := range []string{"", "ADDR=192.0.2.1 PORT=1 SESSION=x TTL=4", "addr=::1", "TTL=256", "PORT=0", "junk =x"} {
		f.Add(s)
	}
	f.Add("FORWARD=" + EncodeForward([]string{"a=b"}))
	f.Fuzz(func(t *testing.T, args string) {
		x, ok := ParseXCLIENT(args)
		if !ok {
			return
		}
		if x.TTL < -1 || x.TTL > 255 || len(x.Session) > 64 || x.Addr.Is4In6() || len(strings.Join(x.Forward, "\t")) > maxForward {
			t.Fatalf("accepted %+v", x)
		}
	})
}
