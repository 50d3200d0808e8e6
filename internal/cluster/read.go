package cluster

import "net/netip"

// View is the state as its readers see it (Node.Read): the read accessors
// of State, without Apply or UnmarshalBinary, so that no reader can change
// a replica outside the log.
type View interface {
	Hosts() []Host
	Host(ip netip.Addr) (Host, bool)
	User(tag string, hash uint32) (User, bool)
	EachUser(filter *netip.Addr, fn func(User) bool)
	Users(filter *netip.Addr) []User
	UserTotal() int
	UserCount(ip netip.Addr, now, expire int64) int
	UserCounts(now, expire int64) map[netip.Addr]int
	ConfiguredHosts() []Host
	RemovedHosts() []netip.Addr
	Tags() []string
	Initialized() bool
	HostGen() uint64
	MarshalBinary() ([]byte, error)
}

var _ View = (*State)(nil)

// Read runs fn with the state read-locked. fn must not keep the view.
func (n *Node) Read(fn func(s View)) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	fn(n.fsm.state)
}

// Read accessors. They return copies; the caller holds the lock (see Node.Read).

// Hosts returns every host, IPv4 before IPv6, then by address bytes.
func (s *State) Hosts() []Host {
	out := make([]Host, len(s.hosts))
	for i, h := range s.hosts {
		out[i] = h.Host
	}
	return out
}

// Host returns one host.
func (s *State) Host(ip netip.Addr) (Host, bool) {
	if h := s.hostRec(ip); h != nil {
		return h.Host, true
	}
	return Host{}, false
}

// User returns a mapping as stored, without checking expiry.
func (s *State) User(tag string, hash uint32) (User, bool) {
	d := s.lookupTag(tag)
	if d == nil {
		return User{}, false
	}
	i, ok := d.get(hash)
	if !ok {
		return User{}, false
	}
	return s.userOf(d, i), true
}

// EachUser visits mappings (of one host if filter is set) in USER-LIST
// order: tags in creation order, oldest timestamp first within a tag. It
// stops when fn returns false. Expired mappings not yet collected are
// included; callers compare Timestamp with their expiry.
func (s *State) EachUser(filter *netip.Addr, fn func(User) bool) {
	slot, ok := 0, true
	if filter != nil {
		h := s.hostRec(*filter)
		if h == nil {
			return
		}
		slot = int(h.slot)
	}
	for _, d := range s.tags {
		d.each(func(e *entry) bool {
			if filter != nil && int(e.host) != slot {
				return true
			}
			ok = fn(User{Tag: d.name, Hash: e.hash, Host: s.slotIP[e.host], Timestamp: e.ts})
			return ok
		})
		if !ok {
			return
		}
	}
}

// Users collects EachUser into a slice.
func (s *State) Users(filter *netip.Addr) []User {
	var out []User
	s.EachUser(filter, func(u User) bool {
		out = append(out, u)
		return true
	})
	return out
}

// UserTotal is the number of stored mappings, expired or not.
func (s *State) UserTotal() int {
	n := 0
	for _, d := range s.tags {
		n += d.len()
	}
	return n
}

// UserCount is the number of the host's mappings not expired at now, given
// director_user_expire in seconds (<= 0: count all).
func (s *State) UserCount(ip netip.Addr, now, expire int64) int {
	h := s.hostRec(ip)
	if h == nil {
		return 0
	}
	return s.UserCounts(now, expire)[h.IP]
}

// UserCounts gives UserCount for every host in one pass. Expired entries sit
// at the head of each tag's list, so this costs O(hosts + expired users).
func (s *State) UserCounts(now, expire int64) map[netip.Addr]int {
	counts := make([]int, len(s.slotUsers))
	copy(counts, s.slotUsers)
	if expire > 0 {
		for _, d := range s.tags {
			d.each(func(e *entry) bool {
				if e.ts > now-expire {
					return false
				}
				counts[e.host]--
				return true
			})
		}
	}
	out := make(map[netip.Addr]int, len(s.hosts))
	for _, h := range s.hosts {
		out[h.IP] = counts[h.slot]
	}
	return out
}

// ConfiguredHosts is the director_mail_servers list last applied, sorted.
func (s *State) ConfiguredHosts() []Host {
	return append([]Host(nil), s.configured...)
}

// RemovedHosts lists configured hosts that are no longer present
// (HOST-LIST-REMOVED), in host order.
func (s *State) RemovedHosts() []netip.Addr {
	var out []netip.Addr
	for _, h := range s.configured {
		if s.hostRec(h.IP) == nil {
			out = append(out, h.IP)
		}
	}
	return out
}

// Tags lists tag names in creation order.
func (s *State) Tags() []string {
	out := make([]string, len(s.tags))
	for i, d := range s.tags {
		out[i] = d.name
	}
	return out
}

// Initialized reports whether director_mail_servers has ever been applied.
func (s *State) Initialized() bool { return s.inited }

// HostGen is the host table's generation: it changes whenever a host is
// added, updated, marked up or down, or removed.
func (s *State) HostGen() uint64 { return s.hostGen }
