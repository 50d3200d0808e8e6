package director

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func ips(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		s := h.IP.String()
		if h.Tag != "" {
			s += "@" + h.Tag
		}
		if h.Hostname != "" {
			s += "(" + h.Hostname + ")"
		}
		out = append(out, s)
	}
	return out
}

func TestParseMailServers(t *testing.T) {
	resolve := func(name string) ([]netip.Addr, error) {
		switch name {
		case "mail-a.test":
			return []netip.Addr{ip("127.0.1.2"), ip("::1")}, nil
		case "127.0.0.1-bad":
			return []netip.Addr{ip("127.0.9.9")}, nil
		case "localhost":
			return []netip.Addr{ip("127.0.0.1")}, nil
		case "empty.test":
			return nil, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"127.0.0.12 127.0.0.11", []string{"127.0.0.11", "127.0.0.12"}},
		{"  127.0.0.11\t127.0.0.12@tagB  ", []string{"127.0.0.11", "127.0.0.12@tagB"}},
		{"127.0.0.1-127.0.0.3", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}},
		{"10.1.2.254-10.1.2.255@x", []string{"10.1.2.254@x", "10.1.2.255@x"}},
		{"127.0.0.5-127.0.0.5", []string{"127.0.0.5"}},
		{"::1:fffe-::1:ffff", []string{"::1:fffe", "::1:ffff"}},
		{"fd00::ff-fd00::101", []string{"fd00::ff", "fd00::100", "fd00::101"}},
		// Dovecot 2.3.19 lists one host per tag for the same IP (verified with a real director).
		{"127.0.0.2@x 127.0.0.1 127.0.0.2 127.0.0.1", []string{"127.0.0.1", "127.0.0.2@x", "127.0.0.2"}},
		{"127.0.0.1-127.0.0.2 127.0.0.2-127.0.0.3@t", []string{"127.0.0.1", "127.0.0.2", "127.0.0.2@t", "127.0.0.3@t"}},
		// Not both sides IPs: a hostname, as in Dovecot ("Unknown mail host: 127.0.0.1-bad").
		{"127.0.0.1-bad", []string{"127.0.9.9(127.0.0.1-bad)"}},
		{"localhost@", []string{"127.0.0.1(localhost)"}},
		{"mail-a.test@t", []string{"127.0.1.2@t(mail-a.test)", "::1@t(mail-a.test)"}},
		{"::1 127.0.0.9", []string{"127.0.0.9", "::1"}},
	}
	for _, tc := range tests {
		got, err := ParseMailServers(tc.in, resolve)
		if err != nil {
			t.Errorf("ParseMailServers(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(ips(got), tc.want) {
			t.Errorf("ParseMailServers(%q) = %v, want %v", tc.in, ips(got), tc.want)
		}
		for _, h := range got {
			if h.VhostCount != DefaultVhostCount || h.Down {
				t.Errorf("%q: host %v not up with vhost 100", tc.in, h)
			}
		}
	}
}

func TestParseMailServersErrors(t *testing.T) {
	resolve := func(string) ([]netip.Addr, error) { return nil, nil }
	for _, in := range []string{
		"127.0.0.1-127.0.1.1",     // third octet varies
		"10.0.0.1-11.0.0.1",       // first octet varies
		"fd00::1:1-fd00::2:1",     // more than the last 16 bits vary
		"127.0.0.3-127.0.0.1",     // backwards
		"127.0.0.1-::1",           // mixed families
		"127.0.0.1-foo",           // not a range, and the "hostname" does not resolve
		"@tag",                    // no host
		"no-such-host.test",       // resolves to nothing
		"fe80::1%eth0",            // zone
		"127.0.0.1 127.0.0.1-127", // bad second token fails the whole setting
	} {
		if got, err := ParseMailServers(in, resolve); err == nil {
			t.Errorf("ParseMailServers(%q) = %v, want error", in, ips(got))
		}
	}
	if _, err := ParseMailServers("mail.test", nil); err == nil || !strings.Contains(err.Error(), "not an IP") {
		t.Errorf("hostname without resolver: %v", err)
	}
}

func FuzzParseMailServers(f *testing.F) {
	f.Add("127.0.0.1-127.0.0.9@tagB 10.0.0.1 ::1")
	f.Add("fd00::ff-fd00::1ff")
	f.Add("a-b@c@d host")
	f.Fuzz(func(t *testing.T, s string) {
		hosts, err := ParseMailServers(s, func(string) ([]netip.Addr, error) {
			return []netip.Addr{ip("127.0.0.53")}, nil
		})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for i, h := range hosts {
			k := h.IP.String() + "@" + h.Tag
			if !h.IP.IsValid() || h.IP.Zone() != "" || seen[k] {
				t.Fatalf("bad or duplicate host %v", h)
			}
			seen[k] = true
			if i > 0 && CompareAddr(hosts[i-1].IP, h.IP) > 0 {
				t.Fatalf("not sorted: %v", ips(hosts))
			}
			if h.VhostCount != DefaultVhostCount {
				t.Fatalf("vhost %d", h.VhostCount)
			}
		}
		if len(hosts) <= 64 { // ranges can add 65536 hosts; keep iterations fast
			NewRings(hosts) // must not panic on anything the parser accepts
		}
	})
}
