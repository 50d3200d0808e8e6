package director

import (
	"net/netip"
	"strconv"
)

// InetNtop formats ip as glibc's inet_ntop does, because ring points hash that exact text.
// netip.Addr.String agrees (RFC 5952 style, IPv4-mapped as ::ffff:a.b.c.d) except for the
// deprecated IPv4-compatible form: when the first 96 bits are zero and bits 96-111 are not,
// glibc prints "::a.b.c.d" where Go prints hex groups. Zones are not part of the text.
func InetNtop(ip netip.Addr) string {
	if !ip.Is6() || ip.Is4In6() {
		return ip.WithZone("").String()
	}
	b := ip.As16()
	for _, c := range b[:12] {
		if c != 0 {
			return ip.WithZone("").String()
		}
	}
	if b[12] == 0 && b[13] == 0 {
		return ip.WithZone("").String()
	}
	out := make([]byte, 0, len("::255.255.255.255"))
	out = append(out, "::"...)
	for i, c := range b[12:] {
		if i > 0 {
			out = append(out, '.')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return string(out)
}
