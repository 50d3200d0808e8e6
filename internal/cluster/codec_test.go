package cluster

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/director"
)

func sampleCommands() []Command {
	return []Command{
		{Op: OpHostSet, IP: ip1, Tag: "t", VhostCount: -1, Now: 1700000000},
		{Op: OpHostUpdate, IP: ip6, VhostCount: 0, Now: 1},
		{Op: OpHostFlush, All: true, VhostCount: -1},
		assign("tag", 0xdeadbeef, ip2, 1700000000),
		{Op: OpUserRefresh, Users: []UserKey{{"", 1}, {"x", 0xffffffff}}, Now: -5, VhostCount: -1},
		{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100, Hostname: "mx"}}, {Host: director.Host{IP: ip6, Tag: "a", VhostCount: -1, Down: true}, LastUpDown: 9}}, VhostCount: -1},
		{Op: OpExpire, Now: 1000, Expire: 900, VhostCount: -1},
		{Op: OpHealthDown, IP: ip1, Now: 7, VhostCount: -1},
		{Op: OpUserRecord, Expire: 900, VhostCount: -1, Records: []Record{
			{Hash: 1, IP: ip1, Gen: 7, TS: 1700000000}, {Tag: "t", Hash: 0xffffffff, TS: -1}, {Hash: 2, IP: ip6, Gen: 1 << 40}}},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Command
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%v: %v", c.Op, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, c)
		}
	}
	b, _ := assign("", 3045693125, ip1, 1700000000).MarshalBinary()
	if len(b) > 24 {
		t.Errorf("UserAssign entry is %d bytes", len(b))
	}
	for _, bad := range [][]byte{nil, {2, 1, 0}, {1, 1, 0x80}, {1, 1, 0xff, 0x7f}, {1, 1, 1, 5, 1}, append(b, 0)} {
		var c Command
		if err := c.UnmarshalBinary(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

func TestSnapshotErrors(t *testing.T) {
	s := base(t)
	b, _ := s.MarshalBinary()
	for i := range b {
		var r State
		if err := r.UnmarshalBinary(b[:i]); err == nil {
			t.Errorf("truncated at %d decoded", i)
		}
	}
	// A failed decode leaves the state alone.
	if err := s.UnmarshalBinary([]byte("USHR\x01\x00\x05")); err == nil {
		t.Fatal("garbage decoded")
	}
	if s.UserTotal() != 3 {
		t.Errorf("state changed by failed decode")
	}
	dup := NewState()
	dup.Apply(hostSet(ip1, "", -1))
	dup.Apply(assign("", 1, ip1, 10))
	db, _ := dup.MarshalBinary()
	// Duplicate the single user record (hash 4 bytes, index, ts) and bump the count.
	i := bytes.LastIndex(db, []byte{0, 0, 0, 1})
	bad := append(append([]byte{}, db[:i-1]...), 2)
	bad = append(bad, db[i:]...)
	bad = append(bad, db[i:i+5]...)
	bad = append(bad, 0)
	var r State
	if err := r.UnmarshalBinary(bad); err == nil {
		t.Errorf("duplicate user decoded")
	}
}

func FuzzCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Command
		if c.UnmarshalBinary(data) != nil {
			return
		}
		b1, _ := c.MarshalBinary()
		var c2 Command
		if err := c2.UnmarshalBinary(b1); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b2, _ := c2.MarshalBinary()
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable")
		}
		// Applying anything decodable must not panic and keep the state consistent.
		s := NewState()
		s.Apply(hostSet(ip1, "", -1))
		s.Apply(assign("", 1, ip1, 10))
		s.Apply(c2)
		checkInvariants(t, s)
	})
}

func FuzzSnapshot(f *testing.F) {
	s := NewState()
	s.Apply(Command{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: 100}}, {Host: director.Host{IP: ip3, VhostCount: 1}}}})
	s.Apply(hostSet(ip6, "t", 5))
	s.Apply(assign("", 1, ip1, 10))
	s.Apply(assign("t", 2, ip6, 20))
	s.Apply(Command{Op: OpHostRemove, IP: ip3})
	b, _ := s.MarshalBinary()
	f.Add(b)
	empty, _ := NewState().MarshalBinary()
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewState()
		if s.UnmarshalBinary(data) != nil {
			return
		}
		checkInvariants(t, s)
		s.Apply(assign("", 99, netip.MustParseAddr("10.0.0.1"), 50))
		s.Apply(Command{Op: OpExpire, Now: 1 << 40, Expire: 1})
		checkInvariants(t, s)
	})
}
