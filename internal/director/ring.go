package director

import (
	"crypto/md5"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
)

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
