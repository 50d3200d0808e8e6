package cluster

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/director"
)

func record(recs ...Record) Command {
	return Command{Op: OpUserRecord, Records: recs, Expire: expire, VhostCount: -1}
}

// TestRecordConflictRule: within and across batches the first assignment of
// a user that is applied wins; later ones (another director's choice) get
// the winner back, and so do refreshes; an assignment to a host that is gone
// maps nobody.
func TestRecordConflictRule(t *testing.T) {
	s := base(t)
	got := s.Apply(record(
		Record{Hash: 10, IP: ip1, Gen: 2, TS: 300},  // new user: mapped
		Record{Hash: 1, TS: 300},                    // refresh of user 1
		Record{Hash: 10, IP: ip2, Gen: 1, TS: 301},  // another director's choice: loses
		Record{Hash: 11, IP: ipNo, Gen: 2, TS: 300}, // host unknown: not mapped
		Record{Hash: 12, TS: 300},                   // refresh of an unmapped user: nothing
		Record{Tag: "t", Hash: 13, IP: ip2, TS: 299},
	))
	want := []netip.Addr{ip1, ip1, ip1, {}, {}, ip2}
	if got.Code != OK || !reflect.DeepEqual(got.Hosts, want) {
		t.Fatalf("result %+v, want hosts %v", got, want)
	}
	wantRows := []userRow{
		{"", 2, "10.0.0.1", 200}, {"", 1, "10.0.0.1", 300}, {"", 10, "10.0.0.1", 301},
		{"t", 3, "10.0.0.2", 150}, {"t", 13, "10.0.0.2", 299},
	}
	if r := rows(s); !reflect.DeepEqual(r, wantRows) {
		t.Fatalf("rows %v\nwant %v", r, wantRows)
	}
	// A later batch from a director that was cut off: user 10 is live, its
	// assignment loses even though it was decided earlier.
	if got := s.Apply(record(Record{Hash: 10, IP: ip2, TS: 250})); got.Hosts[0] != ip1 {
		t.Fatalf("late record won: %v", got.Hosts)
	}
	// An expired mapping is replaced by the next assignment.
	if got := s.Apply(record(Record{Hash: 2, IP: ip2, TS: 200 + expire})); got.Hosts[0] != ip2 {
		t.Fatalf("expired mapping kept: %v", got.Hosts)
	}
	checkInvariants(t, s)
}

// TestHostGen: every change to the host table moves the generation, user
// changes and refused host commands do not.
func TestHostGen(t *testing.T) {
	s := NewState()
	steps := []struct {
		c    Command
		bump bool
	}{
		{Command{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: -1}}}}, true},
		{hostSet(ip2, "", 10), true},
		{hostSet(ip2, "other", 10), false}, // tag change refused
		{Command{Op: OpHostDown, IP: ip2, Now: 5}, true},
		{Command{Op: OpHostUp, IP: ip2, Now: 6}, true},
		{Command{Op: OpHealthDown, IP: ip2, Now: 7}, true},
		{Command{Op: OpHealthUp, IP: ip2, Now: 8}, true},
		{Command{Op: OpHostUpdate, IP: ip3, VhostCount: 5}, false}, // unknown host
		{assign("", 1, ip1, 10), false},
		{record(Record{Hash: 2, IP: ip2, TS: 10}), false},
		{Command{Op: OpHostFlush, All: true}, false},
		{Command{Op: OpHostRemove, IP: ip2}, true},
	}
	for i, st := range steps {
		before := s.HostGen()
		s.Apply(st.c)
		if moved := s.HostGen() != before; moved != st.bump {
			t.Errorf("step %d (%v): generation moved %v, want %v", i, st.c.Op, moved, st.bump)
		}
	}
	b, _ := s.MarshalBinary()
	r := NewState()
	if err := r.UnmarshalBinary(b); err != nil || r.HostGen() != s.HostGen() {
		t.Fatalf("generation after restore %d, want %d (%v)", r.HostGen(), s.HostGen(), err)
	}
}

// randomLog is a log a busy ring could produce: host changes, batches of
// records from two directors that disagree now and then, moves, expiry.
func randomLog(seed uint64, n int) []Command {
	rng := rand.New(rand.NewPCG(seed, 1))
	hosts := []netip.Addr{ip1, ip2, ip3}
	log := []Command{{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: -1}}, {Host: director.Host{IP: ip2, VhostCount: -1}}}}}
	now := int64(1000)
	for range n {
		now += int64(rng.IntN(30))
		switch k := rng.IntN(20); {
		case k == 0:
			op := OpHostDown
			if rng.IntN(2) == 0 {
				op = OpHostUp
			}
			log = append(log, Command{Op: op, IP: hosts[rng.IntN(3)], Now: now})
		case k == 1:
			log = append(log, hostSet(hosts[rng.IntN(3)], "", rng.IntN(200)))
		case k == 2:
			log = append(log, Command{Op: OpExpire, Now: now, Expire: expire})
		case k == 3:
			log = append(log, Command{Op: OpUserMove, Hash: uint32(rng.IntN(500)), IP: hosts[rng.IntN(3)], Now: now})
		default:
			c := record()
			for range 1 + rng.IntN(50) {
				r := Record{Hash: uint32(rng.IntN(500)), TS: now - int64(rng.IntN(60)), Gen: uint64(rng.IntN(9))}
				if rng.IntN(3) > 0 {
					r.IP = hosts[rng.IntN(3)]
				}
				c.Records = append(c.Records, r)
			}
			log = append(log, c)
		}
	}
	return log
}

// TestRecordReplay: directors that apply the same log, one of them from a
// snapshot taken halfway, end with byte-identical snapshots; and a group
// commit decides exactly what its records would have decided one entry each.
func TestRecordReplay(t *testing.T) {
	for seed := range uint64(5) {
		log := randomLog(seed, 400)
		a, b, single := NewState(), NewState(), NewState()
		var c *State
		for i, cmd := range log {
			enc, _ := cmd.MarshalBinary()
			var dec Command
			if err := dec.UnmarshalBinary(enc); err != nil {
				t.Fatal(err)
			}
			ra, rb := a.Apply(cmd), b.Apply(dec)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d entry %d: results differ %+v %+v", seed, i, ra, rb)
			}
			if c != nil {
				c.Apply(dec)
			}
			if i%50 == 0 {
				checkInvariants(t, a)
			}
			if i == len(log)/2 {
				snap, _ := a.MarshalBinary()
				c = NewState()
				if err := c.UnmarshalBinary(snap); err != nil {
					t.Fatal(err)
				}
			}
			if cmd.Op != OpUserRecord {
				single.Apply(cmd)
				continue
			}
			for j, r := range cmd.Records {
				one := single.Apply(record(r))
				if one.Hosts[0] != ra.Hosts[j] {
					t.Fatalf("seed %d entry %d record %d: batch gave %v, one by one %v", seed, i, j, ra.Hosts[j], one.Hosts[0])
				}
			}
		}
		sa, _ := a.MarshalBinary()
		sb, _ := b.MarshalBinary()
		sc, _ := c.MarshalBinary()
		ss, _ := single.MarshalBinary()
		if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) || !bytes.Equal(sa, ss) {
			t.Fatalf("seed %d: snapshots differ (%d, %d, %d, %d bytes)", seed, len(sa), len(sb), len(sc), len(ss))
		}
		checkInvariants(t, a)
	}
}

func TestResultHostsRoundTrip(t *testing.T) {
	for _, r := range []Result{{Code: NotFound, Dropped: 3}, {Hosts: []netip.Addr{ip1, {}, ip6}}} {
		got, idx, err := decodeResult(appendResult(nil, r, 42))
		if err != nil || idx != 42 || !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip %+v: %+v %d %v", r, got, idx, err)
		}
	}
}
