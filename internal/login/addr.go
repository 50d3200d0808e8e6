package login

import (
	"net"
	"net/netip"
)

// AddrPort is a's address with IPv4-mapped IPv6 unmapped, so that policies, penalties and
// logs see one form of an IPv4 client whatever socket accepted it.
func AddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
