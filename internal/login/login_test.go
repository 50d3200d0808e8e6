package login

import (
	"encoding/base64"
	"net/netip"
	"testing"
	"time"
)

func TestPlaintextAllowed(t *testing.T) {
	env := (&Env{DisablePlaintextAuth: true,
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}).WithDefaults()
	cases := []struct {
		ip   string
		tls  bool
		want bool
	}{
		{"192.0.2.1", false, false},
		{"192.0.2.1", true, true},
		{"127.0.0.5", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, true},
		{"::ffff:10.1.2.3", false, true},
		{"10.2.0.1", false, false},
	}
	for _, c := range cases {
		if got := env.PlaintextAllowed(netip.MustParseAddr(c.ip), c.tls); got != c.want {
			t.Errorf("PlaintextAllowed(%s, %v) = %v", c.ip, c.tls, got)
		}
	}
	env.DisablePlaintextAuth = false
	if !env.PlaintextAllowed(netip.MustParseAddr("192.0.2.1"), false) {
		t.Error("disable_plaintext_auth=no must allow plaintext everywhere")
	}
	if env.IsTrusted(netip.MustParseAddr("127.0.0.1")) {
		t.Error("loopback is not trusted unless listed")
	}
}

func TestWithDefaults(t *testing.T) {
	env := (&Env{}).WithDefaults()
	if env.Penalties == nil || env.Sessions == nil || env.Stats == nil || env.Logger == nil {
		t.Fatal("nil parts left")
	}
	if env.ProxyTimeout != DefaultProxyTimeout {
		t.Errorf("ProxyTimeout = %v", env.ProxyTimeout)
	}
	env.Sessions.Register(SessionInfo{}, func(string) {})(1, 2)
}

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewSessionID()
		if len(id) != 16 {
			t.Fatalf("len(%q) = %d", id, len(id))
		}
		if _, err := base64.StdEncoding.DecodeString(id); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
	}
}

func TestTempFailText(t *testing.T) {
	ts := time.Date(2024, 3, 5, 7, 8, 9, 0, time.Local)
	want := "Temporary authentication failure. [dir1:2024-03-05 07:08:09]"
	if got := TempFailText("dir1", ts); got != want {
		t.Errorf("got %q", got)
	}
}
