package sessions

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sess(id, user, client string, hash uint32) Session {
	return Session{
		ID: id, Service: "imap", User: user,
		Client:  netip.MustParseAddrPort(client),
		Local:   netip.MustParseAddrPort("127.0.0.10:143"),
		Backend: netip.MustParseAddrPort("127.0.0.11:143"),
		Start:   time.Unix(1_800_000_000, 0),
		Hash:    hash,
	}
}

type kickLog struct {
	mu      sync.Mutex
	reasons map[string][]string
}

func (k *kickLog) fn(id string) func(string) {
	return func(reason string) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.reasons == nil {
			k.reasons = map[string][]string{}
		}
		k.reasons[id] = append(k.reasons[id], reason)
	}
}

func TestAddListDone(t *testing.T) {
	r := New()
	d1 := r.Add(sess("a", "alice", "127.0.0.1:1000", 1), nil)
	d2 := r.Add(sess("b", "bob", "127.0.0.1:1001", 2), nil)
	if r.Len() != 2 {
		t.Fatalf("Len %d", r.Len())
	}
	l := r.List()
	if len(l) != 2 || l[0].ID != "a" || l[1].ID != "b" {
		t.Fatalf("List not in registration order: %+v", l)
	}
	d1(10, 20)
	d1(99, 99) // ignored
	if r.Len() != 1 || r.List()[0].ID != "b" {
		t.Fatalf("after done: %+v", r.List())
	}
	d2(0, 0)
	if r.Len() != 0 || len(r.List()) != 0 {
		t.Fatal("registry not empty")
	}
}

func TestLiveCounters(t *testing.T) {
	r := New()
	c, done := r.AddLive(sess("a", "alice", "127.0.0.1:1000", 1), nil)
	c.AddIn(5)
	c.AddOut(7)
	if s := r.List()[0]; s.BytesIn != 5 || s.BytesOut != 7 {
		t.Fatalf("live bytes %d/%d", s.BytesIn, s.BytesOut)
	}
	done(3, 100)
	if got := c.in.Load(); got != 5 {
		t.Fatalf("final in %d, want the larger 5", got)
	}
}

func TestCountUserIP(t *testing.T) {
	r := New()
	r.Add(sess("1", "alice", "127.0.0.1:1", 1), nil)
	r.Add(sess("2", "alice", "127.0.0.1:2", 1), nil)
	r.Add(sess("3", "alice", "127.0.0.2:3", 1), nil)
	r.Add(sess("4", "bob", "127.0.0.1:4", 2), nil)
	r.Add(sess("5", "alice", "[::ffff:127.0.0.1]:5", 1), nil)
	if n := r.CountUserIP("alice", netip.MustParseAddr("127.0.0.1")); n != 3 {
		t.Fatalf("alice@127.0.0.1: %d", n)
	}
	if n := r.CountUserIP("carol", netip.MustParseAddr("127.0.0.1")); n != 0 {
		t.Fatalf("carol: %d", n)
	}
}

func TestKickUserAndHash(t *testing.T) {
	r := New()
	var k kickLog
	r.Add(sess("1", "alice", "127.0.0.1:1", 7), k.fn("1"))
	r.Add(sess("2", "alice", "127.0.0.1:2", 7), k.fn("2"))
	r.Add(sess("3", "bob", "127.0.0.1:3", 7), k.fn("3"))
	r.Add(sess("4", "carol", "127.0.0.1:4", 8), k.fn("4"))
	if n := r.KickUser("alice", "Kicked by admin"); n != 2 {
		t.Fatalf("KickUser: %d", n)
	}
	if n := r.KickHash(7, "Moved"); n != 3 {
		t.Fatalf("KickHash: %d", n)
	}
	// Each kick function ran once, with the first reason.
	want := map[string][]string{"1": {"Kicked by admin"}, "2": {"Kicked by admin"}, "3": {"Moved"}}
	if fmt.Sprint(k.reasons) != fmt.Sprint(want) {
		t.Fatalf("kicks %v, want %v", k.reasons, want)
	}
	if n := r.KickUser("nobody", "x"); n != 0 {
		t.Fatalf("KickUser nobody: %d", n)
	}
}

func TestKickMatchCanReenter(t *testing.T) {
	r := New()
	var k kickLog
	r.Add(sess("1", "alice", "127.0.0.1:1", 1), k.fn("1"))
	r.Add(sess("2", "bob", "127.0.0.2:2", 2), k.fn("2"))
	got := r.Kick(func(s Session) bool {
		_ = r.Len() + len(r.List()) // must not deadlock
		return s.Client.Addr() == netip.MustParseAddr("127.0.0.2")
	}, "bye")
	if len(got) != 1 || got[0].User != "bob" || len(k.reasons["2"]) != 1 || len(k.reasons["1"]) != 0 {
		t.Fatalf("Kick: %+v %v", got, k.reasons)
	}
}

func TestKickCallsOutsideLocks(t *testing.T) {
	r := New()
	var done func(int64, int64)
	done = r.Add(sess("1", "alice", "127.0.0.1:1", 1), func(string) { done(0, 0) })
	if n := r.KickUser("alice", "x"); n != 1 || r.Len() != 0 {
		t.Fatalf("kick that ends the session inline: n=%d len=%d", n, r.Len())
	}
}

func TestHashes(t *testing.T) {
	r := New()
	r.Add(sess("1", "a", "127.0.0.1:1", 5), nil)
	r.Add(sess("2", "b", "127.0.0.1:2", 3), nil)
	r.Add(sess("3", "c", "127.0.0.1:3", 5), nil)
	s := sess("4", "d", "127.0.0.1:4", 5)
	s.Tag = "t"
	r.Add(s, nil)
	if h := r.Mappings(); fmt.Sprint(h) != "[{ 3} { 5} {t 5}]" {
		t.Fatalf("Mappings %v", h)
	}
}

func TestConcurrent(t *testing.T) {
	r := New()
	var kicked atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				user := fmt.Sprintf("u%d", (g*7+i)%20)
				done := r.Add(sess(fmt.Sprint(g, i), user, "127.0.0.1:1", uint32(i%5)), func(string) { kicked.Add(1) })
				_ = r.CountUserIP(user, netip.MustParseAddr("127.0.0.1"))
				if i%50 == 0 {
					r.KickHash(uint32(i%5), "x")
					_ = r.List()
					_ = r.Mappings()
				}
				done(int64(i), int64(i))
			}
		}()
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Fatalf("Len %d after all done", r.Len())
	}
}

func fill(r *Registry, n int) {
	for i := range n {
		r.Add(sess(fmt.Sprint(i), fmt.Sprintf("user%d", i), "127.0.0.1:1", uint32(i)), nil)
	}
}

func BenchmarkAddDone(b *testing.B) {
	r := New()
	fill(r, 10_000)
	s := sess("x", "bench", "127.0.0.1:1", 1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Add(s, nil)(1, 1)
		}
	})
}

func BenchmarkList10k(b *testing.B) {
	r := New()
	fill(r, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		if len(r.List()) != 10_000 {
			b.Fatal("wrong length")
		}
	}
}

func BenchmarkCountUserIP100k(b *testing.B) {
	r := New()
	fill(r, 100_000)
	ip := netip.MustParseAddr("127.0.0.1")
	for b.Loop() {
		r.CountUserIP("user42", ip)
	}
}

// The router's view of the registry (router.Kicker).
var _ interface {
	KickHash(hash uint32, reason string) int
	KickUser(user, reason string) int
} = (*Registry)(nil)
