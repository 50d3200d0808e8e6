package cluster

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
)

func benchHosts(s *State, n int) []netip.Addr {
	ips := make([]netip.Addr, n)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		s.Apply(hostSet(ips[i], "", -1))
	}
	return ips
}

// BenchmarkUserAssign applies login-time assignments of new and returning
// users to a state of a million users, as a busy director does.
func BenchmarkUserAssign(b *testing.B) {
	s := NewState()
	ips := benchHosts(s, 20)
	const users = 1_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range users {
		s.Apply(assign("", rng.Uint32(), ips[i%len(ips)], int64(i/1000)))
	}
	now := int64(users / 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%100 == 0 {
			now++
		}
		s.Apply(assign("", rng.Uint32()%(users*2), ips[i%len(ips)], now))
	}
}

// BenchmarkNodeApply is the full path: encode, raft log with fsync, FSM.
func BenchmarkNodeApply(b *testing.B) {
	n, err := Open(Config{Dir: b.TempDir(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if _, err := n.Apply(ctx, hostSet(ip1, "", -1)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			if _, err := n.Apply(ctx, assign("", rng.Uint32(), ip1, 1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMemory1M reports the heap cost of a million mapped users and the
// size of their snapshot.
func BenchmarkMemory1M(b *testing.B) {
	const users = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewState()
		ips := benchHosts(s, 20)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range users {
			s.Apply(assign("", rng.Uint32(), ips[i%len(ips)], int64(i/100)))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(s.UserTotal()), "bytes/user")
		snap, _ := s.MarshalBinary()
		b.ReportMetric(float64(len(snap))/float64(s.UserTotal()), "snapshot-bytes/user")
		runtime.KeepAlive(s)
	}
}
