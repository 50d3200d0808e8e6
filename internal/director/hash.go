package director

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DefaultUserHashTemplate is Dovecot's director_username_hash default.
const DefaultUserHashTemplate = "%Lu"

// ErrExpand wraps every template expansion failure, so callers can answer TRYAGAIN the way the
// director-admin socket does without matching error strings.
var ErrExpand = errors.New("director: failed to expand username hash template")

// UserHash maps a login name to its 32-bit position on the ring: MD5 of the expanded template,
// first four bytes big-endian, with 0 mapped to 1 (0 means "no user" inside Dovecot).
//
// Supported: literal text, %%, the variables %u/%{user}, %n/%{username} (before the first '@'),
// %d/%{domain} (after it, empty without '@'), and the modifiers L and U (ASCII-only case
// mapping, like Dovecot). As in Dovecot, a trailing '%' is dropped and an empty template hashes
// the empty string for everyone. Anything else (unknown variables, width specifiers, other
// modifiers) fails with an error wrapping ErrExpand: Dovecot fails the same way for unknown
// variables; for the rest it applies features usher does not implement.
func UserHash(template, user string) (uint32, error) {
	var in string
	switch template {
	case "%u":
		in = user
	case DefaultUserHashTemplate:
		in = asciiLower(user)
	default:
		s, err := expand(template, user)
		if err != nil {
			return 0, err
		}
		in = s
	}
	return hashString(in), nil
}

func hashString(s string) uint32 {
	return digestHash(md5.Sum([]byte(s)))
}

// digestHash keeps 0 free: Dovecot uses it for "no hash".
func digestHash(sum [md5.Size]byte) uint32 {
	if h := binary.BigEndian.Uint32(sum[:4]); h != 0 {
		return h
	}
	return 1
}

// ParseHashArg reports whether an admin-socket user argument is purely numeric, in which case
// USER-LOOKUP and USER-MOVE take it as the hash itself. Values above 2^32-1 are not numeric
// hashes (Dovecot's str_to_uint fails) and are then hashed as a username.
func ParseHashArg(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

func expand(template, user string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		lower, upper := false, false
	mods:
		for i++; i < len(template); i++ {
			switch template[i] {
			case 'L':
				lower = true
			case 'U':
				upper = true
			default:
				break mods
			}
		}
		// Dovecot drops a '%' (with modifiers) at the very end, and "%L%" is a plain '%'.
		if i >= len(template) {
			break
		}
		if template[i] == '%' {
			b.WriteByte('%')
			continue
		}
		var v string
		var ok bool
		if template[i] == '{' {
			end := strings.IndexByte(template[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%w %q: unterminated %%{", ErrExpand, template)
			}
			v, ok = longVariable(template[i+1:i+end], user)
			i += end
		} else {
			v, ok = shortVariable(template[i], user)
		}
		if !ok {
			return "", fmt.Errorf("%w %q: unknown variable at offset %d", ErrExpand, template, i)
		}
		if lower {
			v = asciiLower(v)
		}
		if upper {
			v = asciiUpper(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func shortVariable(c byte, user string) (string, bool) {
	switch c {
	case 'u':
		return user, true
	case 'n':
		return userPart(user), true
	case 'd':
		return domainPart(user), true
	}
	return "", false
}

// longVariable knows only the %{name} forms; %{u} is unknown in Dovecot too.
func longVariable(name, user string) (string, bool) {
	switch name {
	case "user":
		return user, true
	case "username":
		return userPart(user), true
	case "domain":
		return domainPart(user), true
	}
	return "", false
}

func userPart(user string) string {
	n, _, _ := strings.Cut(user, "@")
	return n
}

func domainPart(user string) string {
	_, d, _ := strings.Cut(user, "@")
	return d
}

// asciiLower maps only A-Z, like Dovecot's t_str_lcase: non-ASCII capitals hash as written.
func asciiLower(s string) string {
	return mapASCII(s, 'A', 'Z', 'a'-'A')
}

func asciiUpper(s string) string {
	return mapASCII(s, 'a', 'z', 'A'-'a')
}

func mapASCII(s string, lo, hi byte, delta int) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if b[i] >= lo && b[i] <= hi {
			b[i] = byte(int(b[i]) + delta)
		}
	}
	return string(b)
}

// Ring is the consistent-hashing ring of one tag. It is immutable, so concurrent lookups need no
// locking; a host change builds a new ring (rare) while lookups (every login) stay cheap.
type Ring struct {
	points []uint32 // sorted
	owners []uint32 // owners[i] indexes addrs for points[i]
	addrs  []netip.Addr
}

type point struct {
	hash uint32
	host int
}

// NewRing builds the ring of tag from hosts: for every host of that tag that is up, vhost_count
// points MD5(ip_str "-" i), first four bytes big-endian, sorted by value with ties broken by IP.
// Down hosts and hosts with vhost count 0 contribute nothing.
func NewRing(hosts []Host, tag string) *Ring {
	var members []netip.Addr
	var pts []point
	seen := make(map[netip.Addr]bool)
	buf := make([]byte, 0, 64)
	for _, h := range hosts {
		if h.Tag != tag || h.Down || h.VhostCount <= 0 || seen[h.IP] {
			continue
		}
		seen[h.IP] = true
		idx := len(members)
		members = append(members, h.IP)
		buf = append(buf[:0], InetNtop(h.IP)...)
		buf = append(buf, '-')
		prefix := len(buf)
		for i := 0; i < h.VhostCount; i++ {
			buf = strconv.AppendInt(buf[:prefix], int64(i), 10)
			sum := md5.Sum(buf)
			pts = append(pts, point{binary.BigEndian.Uint32(sum[:4]), idx})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return CompareAddr(members[a.host], members[b.host])
	})
	r := &Ring{points: make([]uint32, len(pts)), owners: make([]uint32, len(pts)), addrs: members}
	for i, p := range pts {
		r.points[i] = p.hash
		r.owners[i] = uint32(p.host)
	}
	return r
}

// Len is the number of points on the ring.
func (r *Ring) Len() int { return len(r.points) }

// Lookup returns the host owning hash: the first point >= hash, wrapping to the first point.
// An empty ring has no host.
//
// The search is the classic bisection that stops at the first exact hit, like Dovecot's
// insert-position search: when equal points of different hosts straddle an exact hit, the one
// found is the one Dovecot finds, because the sorted arrays are identical.
func (r *Ring) Lookup(hash uint32) (netip.Addr, bool) {
	n := len(r.points)
	if n == 0 {
		return netip.Addr{}, false
	}
	lo, hi := 0, n
	idx := 0
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch v := r.points[mid]; {
		case hash > v:
			lo = mid + 1
			idx = lo
		case hash < v:
			hi = mid
			idx = mid
		default:
			return r.addrs[r.owners[mid]], true
		}
	}
	if idx == n {
		idx = 0
	}
	return r.addrs[r.owners[idx]], true
}

// Rings caches one Ring per tag present in a host set. Like Ring it is immutable.
type Rings struct {
	byTag map[string]*Ring
}

// NewRings builds the ring of every tag that has at least one host (even if all are down).
func NewRings(hosts []Host) *Rings {
	rs := &Rings{byTag: make(map[string]*Ring)}
	for _, h := range hosts {
		if _, ok := rs.byTag[h.Tag]; !ok {
			rs.byTag[h.Tag] = NewRing(hosts, h.Tag)
		}
	}
	return rs
}

// Ring returns the ring of tag, or nil when no host has that tag.
func (rs *Rings) Ring(tag string) *Ring { return rs.byTag[tag] }

// Lookup picks the host for hash in tag's ring; false when the tag has no host that is up.
func (rs *Rings) Lookup(tag string, hash uint32) (netip.Addr, bool) {
	r := rs.byTag[tag]
	if r == nil {
		return netip.Addr{}, false
	}
	return r.Lookup(hash)
}
