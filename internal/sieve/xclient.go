package sieve

import (
	"net/netip"
	"strconv"
	"strings"
)

// XCLIENT arguments as Dovecot's login processes take them (the same parser as internal/pop3).
// xclient holds what a trusted peer may override with XCLIENT; zero fields (ttl -1) are
// unchanged.
type xclient struct {
	addr    netip.Addr
	port    uint16
	session string
	ttl     int
}

// parseXCLIENT reads "ADDR=ip PORT=n SESSION=id TTL=n". Unknown keys are ignored, as Dovecot
// does, so newer proxies can send more; a malformed known value fails the whole command.
func parseXCLIENT(args string) (xclient, bool) {
	x := xclient{ttl: -1}
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch strings.ToUpper(k) {
		case "ADDR":
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return xclient{}, false
			}
			x.addr = ip.Unmap()
		case "PORT":
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return xclient{}, false
			}
			x.port = uint16(p)
		case "SESSION":
			if v == "" || len(v) > 64 {
				return xclient{}, false
			}
			x.session = v
		case "TTL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return xclient{}, false
			}
			x.ttl = n
		}
	}
	return x, true
}
