package director

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSortHostsIPv4First(t *testing.T) {
	hosts := []Host{
		{IP: ip("::1")}, {IP: ip("10.0.0.2")}, {IP: ip("::ffff:1.2.3.4")},
		{IP: ip("9.255.255.255")}, {IP: ip("10.0.0.10")}, {IP: ip("2001:db8::")},
	}
	SortHosts(hosts)
	var got []string
	for _, h := range hosts {
		got = append(got, h.IP.String())
	}
	want := []string{"9.255.255.255", "10.0.0.2", "10.0.0.10", "::1", "::ffff:1.2.3.4", "2001:db8::"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
}

func TestCompareAddr(t *testing.T) {
	if CompareAddr(ip("255.255.255.255"), ip("::")) >= 0 {
		t.Error("IPv4 must sort before IPv6")
	}
	if CompareAddr(ip("1.2.3.4"), ip("1.2.3.4")) != 0 || CompareAddr(netip.Addr{}, netip.Addr{}) != 0 {
		t.Error("equal addresses must compare 0")
	}
	if CompareAddr(ip("1.2.3.5"), ip("1.2.3.4")) <= 0 {
		t.Error("bytes order")
	}
}

// Expected strings are glibc's inet_ntop (Python's socket.inet_ntop on Debian 12).
func TestInetNtopMatchesGlibc(t *testing.T) {
	tests := [][2]string{
		{"127.0.0.11", "127.0.0.11"},
		{"::", "::"},
		{"::1", "::1"},
		{"::2:3", "::0.2.0.3"},
		{"::1.2.3.4", "::1.2.3.4"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"::ffff:0:1.2.3.4", "::ffff:0:102:304"},
		{"::ffff:0:0", "::ffff:0.0.0.0"},
		{"1::", "1::"},
		{"1:0:0:2:0:0:0:3", "1:0:0:2::3"},
		{"1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"},
		{"fe80::1:2", "fe80::1:2"},
		{"2001:DB8::", "2001:db8::"},
		{"0:0:0:0:0:1:0:0", "::1:0:0"},
		{"::0:1:2", "::0.1.0.2"},
		{"::102:0", "::1.2.0.0"},
		{"::0.0.1.0", "::100"},
		{"::7f00:6", "::127.0.0.6"}, // also what doveadm director status prints
		{"::1:0:0:0", "::1:0:0:0"},
		{"fe80::1%eth0", "fe80::1"},
	}
	for _, tc := range tests {
		if got := InetNtop(ip(tc[0])); got != tc[1] {
			t.Errorf("InetNtop(%s) = %q, want %q", tc[0], got, tc[1])
		}
	}
}
