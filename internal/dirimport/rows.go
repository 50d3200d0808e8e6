package dirimport

import (
	"fmt"
	"net/netip"
	"strconv"
	"unicode"
)

// Host is one HOST-LIST row of Dovecot 2.3: ip, vhost count, user count,
// tag, "U" or "D", last up/down change.
type Host struct {
	IP     netip.Addr
	Tag    string
	Vhosts int
	Down   bool
}

// User is one USER-LIST row: username hash, the time the mapping expires
// (last use + director_user_expire), the backend.
type User struct {
	Hash   uint32
	Expire int64
	IP     netip.Addr
}

// maxTag bounds a tag; Dovecot's are short names.
const maxTag = 256

// ParseHost reads a HOST-LIST row. Older directors send only the first three
// fields; a missing tag is no tag and a missing state is up.
func ParseHost(f []string) (Host, error) {
	if len(f) < 3 {
		return Host{}, fmt.Errorf("HOST-LIST row with %d fields, want at least 3", len(f))
	}
	ip, err := netip.ParseAddr(f[0])
	if err != nil {
		return Host{}, fmt.Errorf("HOST-LIST: bad address %q", trunc(f[0]))
	}
	vh, err := strconv.ParseUint(f[1], 10, 16)
	if err != nil || vh > 1000 {
		return Host{}, fmt.Errorf("HOST-LIST %s: bad vhost count %q", ip, trunc(f[1]))
	}
	if _, err := strconv.ParseUint(f[2], 10, 32); err != nil {
		return Host{}, fmt.Errorf("HOST-LIST %s: bad user count %q", ip, trunc(f[2]))
	}
	h := Host{IP: ip.Unmap(), Vhosts: int(vh)}
	if len(f) > 3 {
		if !validTag(f[3]) {
			return Host{}, fmt.Errorf("HOST-LIST %s: bad tag %q", ip, trunc(f[3]))
		}
		h.Tag = f[3]
	}
	if len(f) > 4 {
		switch f[4] {
		case "U":
		case "D":
			h.Down = true
		default:
			return Host{}, fmt.Errorf("HOST-LIST %s: state %q is neither U nor D", ip, trunc(f[4]))
		}
	}
	return h, nil
}

// ParseUser reads a USER-LIST row.
func ParseUser(f []string) (User, error) {
	if len(f) < 3 {
		return User{}, fmt.Errorf("USER-LIST row with %d fields, want 3", len(f))
	}
	hash, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("USER-LIST: bad hash %q", trunc(f[0]))
	}
	exp, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || exp <= 0 {
		return User{}, fmt.Errorf("USER-LIST %d: bad expiry %q", hash, trunc(f[1]))
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil {
		return User{}, fmt.Errorf("USER-LIST %d: bad address %q", hash, trunc(f[2]))
	}
	return User{Hash: uint32(hash), Expire: exp, IP: ip.Unmap()}, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func validTag(t string) bool {
	if len(t) > maxTag {
		return false
	}
	for _, r := range t {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '@' {
			return false
		}
	}
	return true
}
