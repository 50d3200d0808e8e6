// Package ring benchmarks the director ring: new-user assignments through
// three local directors, and the memory a mapped user costs. Run with
//
//	go test -run=NONE -bench=NewUserRoute3 -benchtime=200000x ./bench/ring/
//	go test -run=NONE -bench=NewUserRecorded3 -benchtime=300x ./bench/ring/
//	go test -run=NONE -bench=NewUserAssign3 -benchtime=20000x ./bench/ring/
//	go test -run=NONE -bench=MemoryPerUser -benchtime=1x ./bench/ring/
//
// Results are in docs/benchmarks-ring.md.
package ring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/ring"
	"github.com/usher-mail/usher/internal/router"
)

var backend = netip.MustParseAddr("10.0.0.1")

// freeAddr picks a free port on a random 127.x.y.z address.
func freeAddr(b *testing.B) string {
	ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(250), 1+rand.IntN(250))
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// openRing starts three directors together, as a site's first start does.
func openRing(b *testing.B) []*ring.Ring {
	addrs := []string{freeAddr(b), freeAddr(b), freeAddr(b)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rs := make([]*ring.Ring, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i], errs[i] = ring.Open(ring.Config{Dir: b.TempDir(), Self: addrs[i], Peers: addrs, Secret: "bench", Logger: quiet})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, r := range rs {
			r.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range rs {
		if err := r.Node().WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return rs
}

// addBackend puts the one backend into the ring's host table.
func addBackend(b *testing.B, rs []*ring.Ring) {
	var err error
	for try := 0; try < 50; try++ {
		if _, err = rs[0].Node().Apply(context.Background(), cluster.Command{Op: cluster.OpHostSet, IP: backend, VhostCount: -1, Now: 1}); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatal(err)
}

// logins runs one(w, i) for i in [0, b.N) from 64 goroutines (w: which one)
// and returns the sorted latencies.
func logins(b *testing.B, one func(w int, i uint32) error) []time.Duration {
	var next atomic.Uint32
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if int(i) >= b.N {
					return
				}
				t0 := time.Now()
				if err := one(w, i); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return lat
}

// routers starts a router on each director.
func routers(b *testing.B, rs []*ring.Ring) []*router.Router {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rts := make([]*router.Router, len(rs))
	for i, r := range rs {
		rts[i] = router.New(r.Node(), nil, router.Config{QueueTimeout: time.Minute}, quiet)
		b.Cleanup(rts[i].Close)
	}
	return rts
}

// BenchmarkNewUserRecorded3: one new user at a time logs in on one of the
// three directors; reports how long until its assignment is in the state of
// all three (p50, p99). On a healthy ring that is how long two directors
// could disagree about a user, should a host change make them route it
// differently.
func BenchmarkNewUserRecorded3(b *testing.B) {
	rs := openRing(b)
	addBackend(b, rs)
	rts := routers(b, rs)
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		user := fmt.Sprintf("recorded%d", i)
		rt := rts[i%3]
		t0 := time.Now()
		ip, err := rt.Route(ctx, user)
		if err != nil {
			b.Fatal(err)
		}
		rt.Confirm(user, ip, true)
		h, _ := rt.Hash(user)
		for _, r := range rs {
			for found := false; !found; {
				r.Node().Read(func(s cluster.View) { _, found = s.User("", h) })
				if !found {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkNewUserRoute3: new users logging in through all three directors
// from 64 concurrent logins, as usher routes them: from the director's own
// ring at once, recorded in group commits after the (here instant) backend
// login. Reports assignments per second until every one is in the state of
// all three directors, and the p99 latency of routing one login (Route and
// Confirm: the login itself does not wait for the ring).
func BenchmarkNewUserRoute3(b *testing.B) {
	rs := openRing(b)
	addBackend(b, rs)
	rts := routers(b, rs)
	// Names whose hashes collide are one user to the director.
	users := make([]string, b.N)
	distinct := map[uint32]bool{}
	for i := range users {
		users[i] = fmt.Sprintf("newuser%d", i)
		h, _ := rts[0].Hash(users[i])
		distinct[h] = true
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	lat := logins(b, func(w int, i uint32) error {
		rt := rts[w%3]
		ip, err := rt.Route(ctx, users[i])
		if err == nil {
			rt.Confirm(users[i], ip, true)
		}
		return err
	})
	routed := time.Since(start)
	for _, r := range rs {
		for {
			n := 0
			r.Node().Read(func(s cluster.View) { n = s.UserTotal() })
			if n >= len(distinct) {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%d of %d users recorded", n, len(distinct))
			}
			time.Sleep(time.Millisecond)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "assign/s")
	b.ReportMetric(float64(b.N)/routed.Seconds(), "routed/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkNewUserAssign3: new users assigned through all three directors
// (two thirds forwarded to the leader) from 64 concurrent logins, one log
// entry each and waiting for it, as usher did before it routed new users at
// once; reports assignments per second and the p99 latency of one assignment.
func BenchmarkNewUserAssign3(b *testing.B) {
	rs := openRing(b)
	addBackend(b, rs)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	lat := logins(b, func(w int, i uint32) error {
		c := cluster.Command{Op: cluster.OpUserAssign, Hash: i + 1, IP: backend, Now: 100, Expire: 900}
		_, err := rs[w%3].Node().Apply(ctx, c)
		return err
	})
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "assign/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkMemoryPerUser maps a million users in one director's state and
// reports the live heap per mapped user (Dovecot 2.3 publishes about 100
// bytes).
func BenchmarkMemoryPerUser(b *testing.B) {
	const users = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := cluster.NewState()
		for i := range 20 {
			s.Apply(cluster.Command{Op: cluster.OpHostSet, IP: netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), VhostCount: -1, Now: 1})
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range users {
			ip := netip.AddrFrom4([4]byte{10, 1, 0, byte(i % 20)})
			s.Apply(cluster.Command{Op: cluster.OpUserAssign, Hash: rng.Uint32(), IP: ip, Now: int64(i / 1000), Expire: 900})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(s.UserTotal()), "bytes/user")
		runtime.KeepAlive(s)
	}
}
