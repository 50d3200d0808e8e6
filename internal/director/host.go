package director

import (
	"bytes"
	"net/netip"
	"slices"
)

// DefaultVhostCount is the vhost count of a host added without one (Dovecot's VHOST_MULTIPLIER).
const DefaultVhostCount = 100

// MaxVhostCount is the largest vhost count the director-admin socket accepts.
const MaxVhostCount = 1000

// Host is one backend as the ring sees it. Tag "" is the default tag. Hostname is set only for
// hosts that came from a DNS name in director_mail_servers; the director then answers
// host=<hostname> hostip=<ip> instead of host=<ip>.
type Host struct {
	IP         netip.Addr
	VhostCount int
	Down       bool
	Tag        string
	Hostname   string
}

// CompareAddr orders addresses the way Dovecot's net_ip_cmp does: IPv4 before IPv6, then by
// bytes. IPv4-mapped IPv6 addresses are IPv6 here, as they are for Dovecot.
func CompareAddr(a, b netip.Addr) int {
	if fa, fb := family(a), family(b); fa != fb {
		return fa - fb
	}
	if a.Is4() {
		a4, b4 := a.As4(), b.As4()
		return bytes.Compare(a4[:], b4[:])
	}
	a16, b16 := a.As16(), b.As16()
	return bytes.Compare(a16[:], b16[:])
}

func family(a netip.Addr) int {
	switch {
	case a.Is4():
		return 1
	case a.Is6():
		return 2
	}
	return 0 // the zero Addr sorts first and compares equal to itself
}

// SortHosts sorts hosts by IP, the order Dovecot keeps its host list in (HOST-LIST output).
func SortHosts(hosts []Host) {
	slices.SortStableFunc(hosts, func(a, b Host) int { return CompareAddr(a.IP, b.IP) })
}
