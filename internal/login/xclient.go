package login

import (
	"net/netip"
	"strconv"
	"strings"
)

// XClient holds what a trusted proxy in front of us may override with XCLIENT (POP3 and
// ManageSieve); zero fields and a TTL of -1 leave the current value.
type XClient struct {
	Addr    netip.Addr
	Port    uint16
	Session string
	TTL     int
	Forward []string // FORWARD=: forward fields, see attempt.go
}

// ParseXCLIENT reads "ADDR=ip PORT=n SESSION=id TTL=n FORWARD=b64". Unknown keys are ignored, as Dovecot
// does, so newer proxies can send more; a malformed known value fails the whole command.
func ParseXCLIENT(args string) (XClient, bool) {
	x := XClient{TTL: -1}
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch strings.ToUpper(k) {
		case "ADDR":
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return XClient{}, false
			}
			x.Addr = ip.Unmap()
		case "PORT":
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return XClient{}, false
			}
			x.Port = uint16(p)
		case "SESSION":
			if !ValidSessionID(v) {
				return XClient{}, false
			}
			x.Session = v
		case "FORWARD":
			f, ok := DecodeForward(v)
			if !ok {
				return XClient{}, false
			}
			x.Forward = f
		case "TTL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return XClient{}, false
			}
			x.TTL = n
		}
	}
	return x, true
}

// ValidSessionID reports whether a session id forwarded by a trusted proxy
// may be passed on: 1 to 64 printable ASCII bytes, no space, quote or
// backslash. It goes into the backend's ID command and XCLIENT line and into
// log lines, where a CR, LF or quote would end the field or the command.
func ValidSessionID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// Apply overrides the client address, session id, TTL and forward fields of a connection
// with what x carries.
func (x XClient) Apply(remote *netip.AddrPort, session *string, ttl *int, forward *[]string) {
	if x.Forward != nil {
		*forward = x.Forward
	}
	if x.Addr.IsValid() {
		*remote = netip.AddrPortFrom(x.Addr, remote.Port())
	}
	if x.Port != 0 {
		*remote = netip.AddrPortFrom(remote.Addr(), x.Port)
	}
	if x.Session != "" {
		*session = x.Session
	}
	if x.TTL >= 0 {
		*ttl = x.TTL
	}
}
