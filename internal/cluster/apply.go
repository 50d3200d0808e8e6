package cluster

import (
	"net/netip"
	"slices"

	"github.com/usher-mail/usher/internal/director"
)

// Apply performs one command. It is deterministic: the result depends only
// on the state and the command.
func (s *State) Apply(c Command) Result {
	r := s.apply(c)
	if r.Code == OK && c.Op.changesHosts() {
		s.hostGen++
	}
	return r
}

// changesHosts tells the ops that change the host table, whose generation
// then moves on.
func (o Op) changesHosts() bool {
	switch o {
	case OpHostSet, OpHostUpdate, OpHostUp, OpHostDown, OpHealthUp, OpHealthDown, OpHostRemove, OpInitHosts:
		return true
	}
	return false
}

func (s *State) apply(c Command) Result {
	switch c.Op {
	case OpHostSet, OpHostUpdate:
		return Result{Code: s.applyHostSet(c)}
	case OpHostUp, OpHostDown, OpHealthUp, OpHealthDown:
		h := s.hostRec(c.IP)
		if h == nil {
			return Result{Code: NotFound}
		}
		h.applyUpDown(c.Op, c.Now)
		return Result{}
	case OpHostRemove:
		if !c.IP.IsValid() {
			return Result{Code: Invalid}
		}
		i, ok := s.findHost(normIP(c.IP))
		if !ok {
			return Result{Code: NotFound}
		}
		return Result{Dropped: s.removeHost(i)}
	case OpHostFlush:
		if c.All {
			return Result{Dropped: s.dropUsers(func(uint16) bool { return true })}
		}
		h := s.hostRec(c.IP)
		if h == nil {
			return Result{Code: NotFound}
		}
		slot := h.slot
		return Result{Dropped: s.dropUsers(func(sl uint16) bool { return sl == slot })}
	case OpUserAssign:
		return s.applyUserAssign(c)
	case OpUserRecord:
		hosts := make([]netip.Addr, len(c.Records))
		for i, rec := range c.Records {
			hosts[i] = s.applyRecord(rec, c.Expire)
		}
		return Result{Hosts: hosts}
	case OpUserMove:
		return s.applyUserMove(c)
	case OpUserRefresh:
		for _, k := range c.Users {
			if d := s.lookupTag(k.Tag); d != nil {
				if i, ok := d.get(k.Hash); ok {
					d.setTS(i, max(d.slab[i].ts, c.Now))
				}
			}
		}
		return Result{}
	case OpUserDrop:
		d := s.lookupTag(c.Tag)
		if d == nil {
			return Result{Code: NotFound}
		}
		i, ok := d.get(c.Hash)
		if !ok {
			return Result{Code: NotFound}
		}
		s.slotUsers[d.slab[i].host]--
		d.remove(i)
		return Result{Dropped: 1}
	case OpExpire:
		if c.Expire <= 0 {
			return Result{Code: Invalid}
		}
		n := 0
		for _, d := range s.tags {
			n += d.expire(c.Now-c.Expire, func(e *entry) { s.slotUsers[e.host]-- })
		}
		return Result{Dropped: n}
	case OpInitHosts:
		return Result{Code: s.applyInitHosts(c.Hosts)}
	case OpKick:
		// Kicks travel through the log only so that every director sees
		// them; the observer outside the FSM acts on them.
		return Result{}
	}
	return Result{Code: Invalid}
}

func (s *State) applyHostSet(c Command) Code {
	switch {
	case !c.IP.IsValid() || c.VhostCount < -1:
		return Invalid
	case c.VhostCount > director.MaxVhostCount:
		return VhostTooLarge
	}
	h := s.hostRec(c.IP)
	if h == nil {
		if c.Op == OpHostUpdate {
			return NotFound
		}
		vc := c.VhostCount
		if vc < 0 {
			vc = director.DefaultVhostCount
		}
		return s.addHost(Host{Host: director.Host{IP: normIP(c.IP), Tag: c.Tag, VhostCount: vc}})
	}
	// An empty tag means "not given", as doveadm sends it.
	if c.Tag != "" && c.Tag != h.Tag {
		return TagChange
	}
	if c.VhostCount >= 0 {
		h.VhostCount = c.VhostCount
	}
	return OK
}

// applyUserAssign is the login-time decision. The first decision that
// reaches the log wins: if another director already mapped the user (and the
// mapping has not expired) the existing host is kept, so every director
// agrees on one backend per user.
func (s *State) applyUserAssign(c Command) Result {
	d := s.lookupTag(c.Tag)
	if d != nil {
		if i, ok := d.get(c.Hash); ok {
			e := &d.slab[i]
			if c.Expire <= 0 || e.ts+c.Expire > c.Now {
				d.setTS(i, max(e.ts, c.Now))
				return Result{User: s.userOf(d, i)}
			}
		}
	}
	h := s.hostRec(c.IP)
	if h == nil {
		return Result{Code: NotFound}
	}
	if d == nil {
		d = s.tag(c.Tag)
	}
	return Result{User: s.setUser(d, c.Hash, h.slot, c.Now)}
}

// applyRecord applies one login of an OpUserRecord batch (see Record) and
// returns the user's backend afterwards, invalid if it is not mapped.
func (s *State) applyRecord(r Record, expire int64) netip.Addr {
	d := s.lookupTag(r.Tag)
	if d != nil {
		if i, ok := d.get(r.Hash); ok {
			e := &d.slab[i]
			// A refresh revives a mapping not yet collected, as OpUserRefresh does.
			if !r.IP.IsValid() || expire <= 0 || e.ts+expire > r.TS {
				d.setTS(i, max(e.ts, r.TS))
				return s.slotIP[e.host]
			}
		}
	}
	if !r.IP.IsValid() {
		return netip.Addr{}
	}
	h := s.hostRec(r.IP)
	if h == nil {
		return netip.Addr{}
	}
	if d == nil {
		d = s.tag(r.Tag)
	}
	return s.setUser(d, r.Hash, h.slot, r.TS).Host
}

// applyUserMove puts the user into the directory of the host's tag, as
// Dovecot's USER-MOVE does; Command.Tag is not used.
func (s *State) applyUserMove(c Command) Result {
	h := s.hostRec(c.IP)
	if h == nil {
		return Result{Code: NotFound}
	}
	d := s.tag(h.Tag)
	ts := c.Now
	if i, ok := d.get(c.Hash); ok {
		ts = max(ts, d.slab[i].ts)
	}
	return Result{User: s.setUser(d, c.Hash, h.slot, ts)}
}

// setUser creates or overwrites a mapping.
func (s *State) setUser(d *tagDir, hash uint32, slot uint16, ts int64) User {
	i, ok := d.get(hash)
	if ok {
		s.slotUsers[d.slab[i].host]--
		d.slab[i].host = slot
		d.setTS(i, ts)
	} else {
		i = d.add(hash, slot, ts)
	}
	s.slotUsers[slot]++
	return s.userOf(d, i)
}

func (s *State) userOf(d *tagDir, i int32) User {
	e := &d.slab[i]
	return User{Tag: d.name, Hash: e.hash, Host: s.slotIP[e.host], Timestamp: e.ts}
}

// applyInitHosts applies director_mail_servers.
//
// The first time, the configured hosts become the state. After that the
// replicated state is authoritative, as a director joining a ring takes the
// ring's hosts: admins change hosts with doveadm, and a config reload must not
// undo a `director remove` or a vhost change. A reload only adds hosts that
// are newly listed in the config (an admin who adds a server to
// director_mail_servers expects it to appear) and replaces the recorded
// configuration, which HOST-LIST-REMOVED and the "initial config" lookup are
// computed against. Hosts dropped from the config stay until removed with
// doveadm, because removing one drops its users.
func (s *State) applyInitHosts(hosts []Host) Code {
	cfg := make([]Host, 0, len(hosts))
	for _, h := range hosts {
		if !h.IP.IsValid() || h.VhostCount > director.MaxVhostCount {
			return Invalid
		}
		h.IP = normIP(h.IP)
		if h.VhostCount < 0 {
			h.VhostCount = director.DefaultVhostCount
		}
		h.Down, h.LastUpDown = false, 0
		i, found := slices.BinarySearchFunc(cfg, h.IP, func(c Host, ip netip.Addr) int { return director.CompareAddr(c.IP, ip) })
		if !found {
			cfg = slices.Insert(cfg, i, h)
		}
	}
	old := s.configured
	for _, h := range cfg {
		if s.hostRec(h.IP) != nil {
			continue
		}
		if s.inited && containsHost(old, h.IP) {
			continue
		}
		if code := s.addHost(h); code != OK {
			return code
		}
	}
	s.configured, s.inited = cfg, true
	return OK
}

func containsHost(sorted []Host, ip netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(sorted, ip, func(c Host, ip netip.Addr) int { return director.CompareAddr(c.IP, ip) })
	return ok
}
