package cluster

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/director"
)

var (
	ip1  = netip.MustParseAddr("10.0.0.1")
	ip2  = netip.MustParseAddr("10.0.0.2")
	ip3  = netip.MustParseAddr("10.0.0.3")
	ip6  = netip.MustParseAddr("::1")
	ipNo = netip.MustParseAddr("10.9.9.9")
)

const expire = 900

func hostSet(ip netip.Addr, tag string, vc int) Command {
	return Command{Op: OpHostSet, IP: ip, Tag: tag, VhostCount: vc, Now: 1}
}

func assign(tag string, hash uint32, ip netip.Addr, now int64) Command {
	return Command{Op: OpUserAssign, Tag: tag, Hash: hash, IP: ip, Now: now, Expire: expire, VhostCount: -1}
}

// base has hosts 10.0.0.1 (no tag), 10.0.0.2 (tag "t") and users 1, 2 on
// 10.0.0.1 at t=100 and t=200, user 3 on 10.0.0.2 at t=150.
func base(t *testing.T) *State {
	t.Helper()
	s := NewState()
	for _, c := range []Command{
		hostSet(ip1, "", -1), hostSet(ip2, "t", 50),
		assign("", 1, ip1, 100), assign("", 2, ip1, 200), assign("t", 3, ip2, 150),
	} {
		if r := s.Apply(c); r.Code != OK {
			t.Fatalf("setup %v: %v", c.Op, r.Code)
		}
	}
	return s
}

type userRow struct {
	tag  string
	hash uint32
	ip   string
	ts   int64
}

func rows(s *State) []userRow {
	var out []userRow
	for _, u := range s.Users(nil) {
		out = append(out, userRow{u.Tag, u.Hash, u.Host.String(), u.Timestamp})
	}
	return out
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		cmds    []Command
		want    Result // result of the last command
		users   []userRow
		hosts   []Host // nil: unchecked
		removed []netip.Addr
	}{
		{name: "set new host default vhosts", cmds: []Command{hostSet(ip3, "x", -1)},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}, {Host: director.Host{IP: ip3, Tag: "x", VhostCount: 100}}}},
		{name: "set existing changes vhosts", cmds: []Command{hostSet(ip1, "", 7)},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 7}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "set existing without count keeps it", cmds: []Command{hostSet(ip2, "", -1)},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "set same tag ok", cmds: []Command{hostSet(ip2, "t", 0)},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 0}}}},
		{name: "tag change refused", cmds: []Command{hostSet(ip2, "u", 1)}, want: Result{Code: TagChange},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "vhost too large", cmds: []Command{hostSet(ip3, "", 1001)}, want: Result{Code: VhostTooLarge}},
		{name: "vhost 1000 ok", cmds: []Command{hostSet(ip3, "", 1000)}},
		{name: "negative vhost invalid", cmds: []Command{hostSet(ip3, "", -2)}, want: Result{Code: Invalid}},
		{name: "update absent", cmds: []Command{{Op: OpHostUpdate, IP: ip3, VhostCount: 5}}, want: Result{Code: NotFound}},
		{name: "update too large before notfound", cmds: []Command{{Op: OpHostUpdate, IP: ip3, VhostCount: 5000}}, want: Result{Code: VhostTooLarge}},
		{name: "update existing", cmds: []Command{{Op: OpHostUpdate, IP: ip1, VhostCount: 5}},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 5}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "down then down keeps first time", cmds: []Command{{Op: OpHostDown, IP: ip1, Now: 500}, {Op: OpHostDown, IP: ip1, Now: 600}},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100, Down: true}, LastUpDown: 500, Cause: CauseAdmin}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "up when up unchanged", cmds: []Command{{Op: OpHostUp, IP: ip1, Now: 500}},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}, Cause: CauseAdmin}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "down up", cmds: []Command{{Op: OpHostDown, IP: ip1, Now: 500}, {Op: OpHostUp, IP: ip1, Now: 700}},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}, LastUpDown: 700, Cause: CauseAdmin}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "down keeps users", cmds: []Command{{Op: OpHostDown, IP: ip1, Now: 500}},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"", 2, "10.0.0.1", 200}, {"t", 3, "10.0.0.2", 150}}},
		{name: "down absent", cmds: []Command{{Op: OpHostDown, IP: ipNo}}, want: Result{Code: NotFound}},
		{name: "up absent", cmds: []Command{{Op: OpHostUp, IP: ipNo}}, want: Result{Code: NotFound}},
		{name: "remove drops users", cmds: []Command{{Op: OpHostRemove, IP: ip1}}, want: Result{Dropped: 2},
			users: []userRow{{"t", 3, "10.0.0.2", 150}}, hosts: []Host{{Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}}},
		{name: "remove absent", cmds: []Command{{Op: OpHostRemove, IP: ipNo}}, want: Result{Code: NotFound}},
		{name: "remove then re-add has no users", cmds: []Command{{Op: OpHostRemove, IP: ip1}, hostSet(ip1, "", -1), assign("", 9, ip1, 300)},
			want:  Result{User: User{Hash: 9, Host: ip1, Timestamp: 300}},
			users: []userRow{{"", 9, "10.0.0.1", 300}, {"t", 3, "10.0.0.2", 150}}},
		{name: "flush one", cmds: []Command{{Op: OpHostFlush, IP: ip2}}, want: Result{Dropped: 1},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"", 2, "10.0.0.1", 200}}},
		{name: "flush all", cmds: []Command{{Op: OpHostFlush, All: true}}, want: Result{Dropped: 3}, users: []userRow{}},
		{name: "flush absent", cmds: []Command{{Op: OpHostFlush, IP: ipNo}}, want: Result{Code: NotFound}},
		{name: "assign new", cmds: []Command{assign("", 7, ip2, 300)}, want: Result{User: User{Hash: 7, Host: ip2, Timestamp: 300}},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"", 2, "10.0.0.1", 200}, {"", 7, "10.0.0.2", 300}, {"t", 3, "10.0.0.2", 150}}},
		{name: "assign existing keeps host, refreshes", cmds: []Command{assign("", 1, ip2, 300)},
			want:  Result{User: User{Hash: 1, Host: ip1, Timestamp: 300}},
			users: []userRow{{"", 2, "10.0.0.1", 200}, {"", 1, "10.0.0.1", 300}, {"t", 3, "10.0.0.2", 150}}},
		{name: "assign existing keeps host even if down", cmds: []Command{{Op: OpHostDown, IP: ip1, Now: 250}, assign("", 1, ip2, 300)},
			want: Result{User: User{Hash: 1, Host: ip1, Timestamp: 300}}},
		{name: "assign with older now does not move timestamp back", cmds: []Command{assign("", 2, ip2, 150)},
			want: Result{User: User{Hash: 2, Host: ip1, Timestamp: 200}}},
		{name: "assign expired user rehashes", cmds: []Command{assign("", 1, ip2, 100+expire)},
			want:  Result{User: User{Hash: 1, Host: ip2, Timestamp: 100 + expire}},
			users: []userRow{{"", 2, "10.0.0.1", 200}, {"", 1, "10.0.0.2", 1000}, {"t", 3, "10.0.0.2", 150}}},
		{name: "assign one second before expiry keeps", cmds: []Command{assign("", 1, ip2, 99+expire)},
			want: Result{User: User{Hash: 1, Host: ip1, Timestamp: 99 + expire}}},
		{name: "assign to unknown host", cmds: []Command{assign("", 8, ipNo, 300)}, want: Result{Code: NotFound}},
		{name: "assign same hash other tag is another user", cmds: []Command{assign("t", 1, ip2, 300)},
			want: Result{User: User{Tag: "t", Hash: 1, Host: ip2, Timestamp: 300}}},
		{name: "move existing", cmds: []Command{{Op: OpUserMove, Hash: 1, IP: ip3, Now: 300}, hostSet(ip3, "", -1), {Op: OpUserMove, Hash: 1, IP: ip3, Now: 300}},
			want:  Result{User: User{Hash: 1, Host: ip3, Timestamp: 300}},
			users: []userRow{{"", 2, "10.0.0.1", 200}, {"", 1, "10.0.0.3", 300}, {"t", 3, "10.0.0.2", 150}}},
		{name: "move unknown host", cmds: []Command{{Op: OpUserMove, Hash: 1, IP: ipNo, Now: 300}}, want: Result{Code: NotFound}},
		{name: "move creates in host's tag", cmds: []Command{{Op: OpUserMove, Hash: 5, IP: ip2, Now: 300}},
			want:  Result{User: User{Tag: "t", Hash: 5, Host: ip2, Timestamp: 300}},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"", 2, "10.0.0.1", 200}, {"t", 3, "10.0.0.2", 150}, {"t", 5, "10.0.0.2", 300}}},
		{name: "refresh", cmds: []Command{{Op: OpUserRefresh, Now: 180, Users: []UserKey{{"", 1}, {"", 2}, {"t", 3}, {"", 99}, {"nope", 1}}}},
			users: []userRow{{"", 1, "10.0.0.1", 180}, {"", 2, "10.0.0.1", 200}, {"t", 3, "10.0.0.2", 180}}},
		{name: "drop", cmds: []Command{{Op: OpUserDrop, Hash: 2}}, want: Result{Dropped: 1},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"t", 3, "10.0.0.2", 150}}},
		{name: "drop absent", cmds: []Command{{Op: OpUserDrop, Hash: 2, Tag: "t"}}, want: Result{Code: NotFound}},
		{name: "drop unknown tag", cmds: []Command{{Op: OpUserDrop, Hash: 2, Tag: "zz"}}, want: Result{Code: NotFound}},
		{name: "expire boundary", cmds: []Command{{Op: OpExpire, Now: 150 + expire, Expire: expire}}, want: Result{Dropped: 2},
			users: []userRow{{"", 2, "10.0.0.1", 200}}},
		{name: "expire none", cmds: []Command{{Op: OpExpire, Now: 99 + expire, Expire: expire}},
			users: []userRow{{"", 1, "10.0.0.1", 100}, {"", 2, "10.0.0.1", 200}, {"t", 3, "10.0.0.2", 150}}},
		{name: "expire needs expire", cmds: []Command{{Op: OpExpire, Now: 5000}}, want: Result{Code: Invalid}},
		{name: "unknown op", cmds: []Command{{Op: opCount}}, want: Result{Code: Invalid}},
		{name: "init on used state adds", cmds: []Command{{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip3, VhostCount: -1}}, {Host: director.Host{IP: ip1, VhostCount: -1}}}}},
			hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip2, Tag: "t", VhostCount: 50}}, {Host: director.Host{IP: ip3, VhostCount: 100}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base(t)
			var got Result
			for _, c := range tt.cmds {
				got = s.Apply(c)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result %+v, want %+v", got, tt.want)
			}
			if got := rows(s); tt.users != nil && (len(got) != 0 || len(tt.users) != 0) && !reflect.DeepEqual(got, tt.users) {
				t.Errorf("users %v, want %v", got, tt.users)
			}
			if tt.hosts != nil && !reflect.DeepEqual(s.Hosts(), tt.hosts) {
				t.Errorf("hosts %+v, want %+v", s.Hosts(), tt.hosts)
			}
			checkInvariants(t, s)
		})
	}
}

// checkInvariants verifies the per-host counters and list order against a
// full scan, and that a snapshot round trip is exact.
func checkInvariants(t *testing.T, s *State) {
	t.Helper()
	counts := map[netip.Addr]int{}
	for _, d := range s.tags {
		prev, n, runs := int64(-1<<63), 0, 0
		d.each(func(e *entry) bool {
			if e.ts < prev {
				t.Errorf("tag %q not sorted", d.name)
			}
			if e.ts != prev {
				runs++
				if i := d.runStart[e.ts]; &d.slab[i] != e {
					t.Errorf("tag %q: run of %d starts at %d, not at its first entry", d.name, e.ts, d.slab[i].hash)
				}
			}
			prev = e.ts
			counts[s.slotIP[e.host]]++
			n++
			return true
		})
		if n != d.len() || runs != len(d.runStart) {
			t.Errorf("tag %q: list %d, map %d; runs %d, run index %d", d.name, n, d.len(), runs, len(d.runStart))
		}
	}
	for _, h := range s.hosts {
		if s.slotUsers[h.slot] != counts[h.IP] {
			t.Errorf("host %v: counter %d, scan %d", h.IP, s.slotUsers[h.slot], counts[h.IP])
		}
	}
	b1, _ := s.MarshalBinary()
	r := NewState()
	if err := r.UnmarshalBinary(b1); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	b2, _ := r.MarshalBinary()
	if string(b1) != string(b2) {
		t.Errorf("snapshot not stable")
	}
	if !reflect.DeepEqual(rows(r), rows(s)) || !reflect.DeepEqual(r.Hosts(), s.Hosts()) ||
		!reflect.DeepEqual(r.Tags(), s.Tags()) || !reflect.DeepEqual(r.UserCounts(0, 0), s.UserCounts(0, 0)) {
		t.Errorf("restored state differs")
	}
}

func TestHostOrder(t *testing.T) {
	s := NewState()
	for _, ip := range []string{"::1", "10.0.0.2", "2001:db8::1", "9.0.0.1", "::ffff:10.0.0.1"} {
		s.Apply(hostSet(netip.MustParseAddr(ip), "", -1))
	}
	var got []string
	for _, h := range s.Hosts() {
		got = append(got, h.IP.String())
	}
	want := []string{"9.0.0.1", "10.0.0.1", "10.0.0.2", "::1", "2001:db8::1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if _, ok := s.Host(netip.MustParseAddr("::ffff:9.0.0.1")); !ok {
		t.Errorf("mapped IPv4 lookup failed")
	}
}

func TestInitHosts(t *testing.T) {
	s := NewState()
	cfg := func(ips ...netip.Addr) Command {
		c := Command{Op: OpInitHosts}
		for _, ip := range ips {
			c.Hosts = append(c.Hosts, Host{Host: director.Host{IP: ip, VhostCount: -1, Hostname: "h-" + ip.String()}})
		}
		return c
	}
	ips := func() []netip.Addr {
		var out []netip.Addr
		for _, h := range s.Hosts() {
			out = append(out, h.IP)
		}
		return out
	}
	if s.Initialized() {
		t.Fatal("new state initialised")
	}
	s.Apply(cfg(ip2, ip1, ip1))
	if got := ips(); !reflect.DeepEqual(got, []netip.Addr{ip1, ip2}) {
		t.Fatalf("hosts %v", got)
	}
	if h, _ := s.Host(ip1); h.Hostname != "h-10.0.0.1" || h.VhostCount != 100 {
		t.Errorf("host %+v", h)
	}
	// The admin removes ip1; a restart with the same config must not bring it back.
	s.Apply(Command{Op: OpHostRemove, IP: ip1})
	s.Apply(cfg(ip1, ip2))
	if got := ips(); !reflect.DeepEqual(got, []netip.Addr{ip2}) {
		t.Fatalf("after reapply: %v", got)
	}
	if got := s.RemovedHosts(); !reflect.DeepEqual(got, []netip.Addr{ip1}) {
		t.Errorf("removed %v", got)
	}
	// A newly configured host appears; a host dropped from the config stays.
	s.Apply(cfg(ip1, ip3))
	if got := ips(); !reflect.DeepEqual(got, []netip.Addr{ip2, ip3}) {
		t.Errorf("after config change: %v", got)
	}
	if got := s.RemovedHosts(); !reflect.DeepEqual(got, []netip.Addr{ip1}) {
		t.Errorf("removed %v", got)
	}
	// Re-adding a removed host takes it off the removed list.
	s.Apply(hostSet(ip1, "", -1))
	if got := s.RemovedHosts(); len(got) != 0 {
		t.Errorf("removed %v", got)
	}
	if r := s.Apply(Command{Op: OpInitHosts, Hosts: []Host{{}}}); r.Code != Invalid {
		t.Errorf("invalid host: %v", r.Code)
	}
	checkInvariants(t, s)
}

func TestReads(t *testing.T) {
	s := base(t)
	s.Apply(hostSet(ip6, "", -1))
	s.Apply(assign("", 4, ip6, 1000))
	if got := s.Tags(); !reflect.DeepEqual(got, []string{"", "t"}) {
		t.Errorf("tags %v", got)
	}
	if u, ok := s.User("t", 3); !ok || u.Host != ip2 || u.Timestamp != 150 {
		t.Errorf("user %+v %v", u, ok)
	}
	if _, ok := s.User("", 3); ok {
		t.Errorf("user 3 found in wrong tag")
	}
	f := ip1
	if got := s.Users(&f); len(got) != 2 || got[0].Hash != 1 || got[1].Hash != 2 {
		t.Errorf("filtered %+v", got)
	}
	if got := s.Users(&ipNo); len(got) != 0 {
		t.Errorf("unknown host filter %+v", got)
	}
	// At 150+expire users with ts <= 150 are expired: user 1 and user 3.
	now := int64(150 + expire)
	if n := s.UserCount(ip1, now, expire); n != 1 {
		t.Errorf("ip1 count %d", n)
	}
	if n := s.UserCount(ip2, now, expire); n != 0 {
		t.Errorf("ip2 count %d", n)
	}
	want := map[netip.Addr]int{ip1: 1, ip2: 0, ip6: 1}
	if got := s.UserCounts(now, expire); !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v", got)
	}
	if n := s.UserCount(ip1, now, 0); n != 2 {
		t.Errorf("count without expiry %d", n)
	}
	n := 0
	s.EachUser(nil, func(User) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("EachUser did not stop: %d", n)
	}
}

// TestOutOfOrderTimestamps covers commands decided by nodes whose clocks
// disagree: the list must stay sorted so expiry is exact.
func TestOutOfOrderTimestamps(t *testing.T) {
	s := NewState()
	s.Apply(hostSet(ip1, "", -1))
	for i, ts := range []int64{500, 100, 300, 300, 50, 900, 200} {
		s.Apply(assign("", uint32(i+1), ip1, ts))
	}
	s.Apply(Command{Op: OpUserMove, Hash: 6, IP: ip1, Now: 10}) // keeps 900: never backwards
	s.Apply(Command{Op: OpUserRefresh, Now: 250, Users: []UserKey{{"", 5}}})
	var got []int64
	for _, u := range s.Users(nil) {
		got = append(got, u.Timestamp)
	}
	if want := []int64{100, 200, 250, 300, 300, 500, 900}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if r := s.Apply(Command{Op: OpExpire, Now: 300 + 10, Expire: 10}); r.Dropped != 5 {
		t.Errorf("dropped %d", r.Dropped)
	}
	checkInvariants(t, s)
}
