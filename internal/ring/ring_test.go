package ring

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(testOut, nil)) }

var testOut io.Writer = io.Discard

func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		l.Close()
	}
	return out
}

type testRing struct {
	t     testing.TB
	addrs []string
	dirs  []string
	rings []*Ring
	kicks []atomic.Int64
	tls   *tls.Config
	tune  func(*Config)
}

func newTestRing(t testing.TB, n int, tlsCfg *tls.Config, tune func(*Config)) *testRing {
	t.Helper()
	tr := &testRing{t: t, addrs: freeAddrs(t, n), rings: make([]*Ring, n), kicks: make([]atomic.Int64, n), tls: tlsCfg, tune: tune}
	for range n {
		tr.dirs = append(tr.dirs, t.TempDir())
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tr.open(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	t.Cleanup(tr.closeAll)
	tr.waitReady()
	return tr
}

func (tr *testRing) config(i int) Config {
	cfg := Config{
		Dir: tr.dirs[i], Self: tr.addrs[i], Peers: tr.addrs, Secret: "s3cret",
		TLS: tr.tls, Logger: quiet(), ApplyTimeout: 5 * time.Second,
		PingInterval: 100 * time.Millisecond,
		OnKick:       func(cluster.Kick) { tr.kicks[i].Add(1) },
	}
	if tr.tune != nil {
		tr.tune(&cfg)
	}
	return cfg
}

func (tr *testRing) open(i int) error {
	r, err := Open(tr.config(i))
	if err != nil {
		return err
	}
	tr.rings[i] = r
	return nil
}

func (tr *testRing) closeAll() {
	for i, r := range tr.rings {
		if r != nil {
			r.Close()
			tr.rings[i] = nil
		}
	}
}

func (tr *testRing) waitReady() {
	tr.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range tr.rings {
		if r == nil {
			continue
		}
		if err := r.Node().WaitReady(ctx); err != nil {
			tr.t.Fatal(err)
		}
	}
}

// follower returns the index of a running node that does not lead.
func (tr *testRing) follower() int {
	for i, r := range tr.rings {
		if r != nil && !r.Node().IsLeader() {
			return i
		}
	}
	tr.t.Fatal("no follower")
	return -1
}

func (tr *testRing) leader() int {
	for i, r := range tr.rings {
		if r != nil && r.Node().IsLeader() {
			return i
		}
	}
	return -1
}

// eventually polls cond; the bound only stops a hung test.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateBytes(n *cluster.Node) []byte {
	var b []byte
	n.Read(func(s cluster.View) { b, _ = s.MarshalBinary() })
	return b
}

func (tr *testRing) converged() bool {
	var first []byte
	for _, r := range tr.rings {
		if r == nil {
			continue
		}
		b := stateBytes(r.Node())
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			return false
		}
	}
	return true
}

var (
	ip1 = netip.MustParseAddr("10.0.0.1")
	ip2 = netip.MustParseAddr("10.0.0.2")
	ip3 = netip.MustParseAddr("10.0.0.3")
)

// applyRetry retries an idempotent command that failed with an unknown
// outcome (a leadership change mid-commit), as the router does.
func applyRetry(ctx context.Context, n *cluster.Node, c cluster.Command) (cluster.Result, error) {
	for range 20 {
		res, err := n.Apply(ctx, c)
		if !errors.Is(err, cluster.ErrUnavailable) {
			return res, err
		}
	}
	return n.Apply(ctx, c)
}

func hostSet(ip netip.Addr) cluster.Command {
	return cluster.Command{Op: cluster.OpHostSet, IP: ip, VhostCount: -1, Now: 1}
}

// TestForwardAndConverge: writes on any director reach the leader, are
// answered once committed and visible on the director that took them, and
// 10,000 users assigned through all three map identically everywhere.
func TestForwardAndConverge(t *testing.T) {
	tr := newTestRing(t, 3, nil, nil)
	ctx := context.Background()
	f := tr.follower()
	for _, ip := range []netip.Addr{ip1, ip2, ip3} {
		if res, err := applyRetry(ctx, tr.rings[f].Node(), hostSet(ip)); err != nil || res.Code != cluster.OK {
			t.Fatalf("host set on follower: %v %v", res, err)
		}
	}
	// Read your writes on the follower that took the write.
	tr.rings[f].Node().Read(func(s cluster.View) {
		if len(s.Hosts()) != 3 {
			t.Errorf("follower sees %d hosts right after OK", len(s.Hosts()))
		}
	})
	const users = 10000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := tr.rings[w%3].Node()
			for u := w; u < users; u += 48 {
				// Each user is assigned on two directors with different
				// choices: the first decision in the log must win on both.
				for k, ip := range []netip.Addr{ip1, ip2} {
					node := n
					if k == 1 {
						node = tr.rings[(w+1)%3].Node()
					}
					c := cluster.Command{Op: cluster.OpUserAssign, Hash: uint32(u + 1), IP: ip, Now: 100, Expire: 900}
					if _, err := applyRetry(ctx, node, c); err != nil {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d assignments failed", failed.Load())
	}
	eventually(t, "states identical", tr.converged)
	tr.rings[0].Node().Read(func(s cluster.View) {
		if s.UserTotal() != users {
			t.Errorf("users %d", s.UserTotal())
		}
	})
}

// TestKickEverywhere: a kick entered on a follower is observed once on
// every director.
func TestKickEverywhere(t *testing.T) {
	tr := newTestRing(t, 3, nil, nil)
	f := tr.follower()
	if err := tr.rings[f].Node().Kick(context.Background(), cluster.Kick{User: "alice", Reason: "Kicked by admin"}, time.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "kick seen on all", func() bool {
		for i := range tr.kicks {
			if tr.kicks[i].Load() != 1 {
				return false
			}
		}
		return true
	})
}

// TestMembership: a fourth director joins from director_servers, shows in
// DIRECTOR-LIST with 12 columns, and is removed again.
func TestMembership(t *testing.T) {
	tr := newTestRing(t, 3, nil, nil)
	extra := freeAddrs(t, 1)[0]
	cfg := tr.config(0)
	cfg.Dir, cfg.Self, cfg.Peers = t.TempDir(), extra, append(append([]string{}, tr.addrs...), extra)
	cfg.OnKick = nil
	// A director outside the others' director_servers joins once added
	// with DIRECTOR-ADD.
	ap := netip.MustParseAddrPort(extra)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tr.rings[0].Add(ctx, ap.Addr(), int(ap.Port())); err != nil {
		t.Fatalf("add: %v", err)
	}
	r4, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r4.Close()
	if err := r4.Node().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r4.Node().Apply(ctx, hostSet(ip1)); err != nil {
		t.Fatalf("write through the new director: %v", err)
	}
	eventually(t, "4 rows, all reachable", func() bool { return memberRows(tr.rings[1].List(), 4, true) })
	rows := tr.rings[1].List()
	selves := 0
	for _, f := range rows {
		if f[2] == "self" {
			selves++
			if f[1] != portOf(tr.addrs[1]) {
				t.Errorf("self row %v", f)
			}
		}
	}
	if selves != 1 {
		t.Errorf("rows %v", rows)
	}
	if found, err := tr.rings[2].Remove(ctx, ap.Addr(), int(ap.Port())); !found || err != nil {
		t.Fatalf("remove: %v %v", found, err)
	}
	if found, err := tr.rings[2].Remove(ctx, ap.Addr(), int(ap.Port())); found || err != nil {
		t.Errorf("second remove: %v %v", found, err)
	}
	// The removed director stays listed as "removed" for a while, as in Dovecot, on the
	// director that removed it and on the others.
	for _, i := range []int{0, 2} {
		eventually(t, "3 members and the removed one", func() bool {
			rows := tr.rings[i].List()
			return len(rows) == 4 && removedRows(rows, extra) == 1
		})
	}
	// Re-adding by DIRECTOR-ADD works on any director, twice.
	for range 2 {
		if err := tr.rings[tr.follower()].Add(ctx, ap.Addr(), int(ap.Port())); err != nil {
			t.Fatalf("add: %v", err)
		}
	}
	eventually(t, "4 member rows again", func() bool { return memberRows(tr.rings[0].List(), 4, false) })
	// Removing oneself changes nothing.
	self := netip.MustParseAddrPort(tr.addrs[0])
	if found, err := tr.rings[0].Remove(ctx, self.Addr(), int(self.Port())); !found || err != nil {
		t.Errorf("remove self: %v %v", found, err)
	}
}

// memberRows reports whether DIRECTOR-LIST shows n members, each with
// the 12 columns of a member row and, if reachable is set, none
// unreachable.
func memberRows(rows [][]string, n int, reachable bool) bool {
	if len(rows) != n {
		return false
	}
	for _, f := range rows {
		if len(f) != 12 || reachable && f[4] == "unreachable" {
			return false
		}
	}
	return true
}

// removedRows counts DIRECTOR-LIST's "removed" rows for addr.
func removedRows(rows [][]string, addr string) int {
	n := 0
	for _, f := range rows {
		if len(f) == 5 && f[2] == "removed" && net.JoinHostPort(f[0], f[1]) == addr && f[4] == "" {
			n++
		}
	}
	return n
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestNoQuorum: with two of three directors gone, the last one still
// reads its copy, and writes fail with ErrUnavailable within the bound.
func TestNoQuorum(t *testing.T) {
	tr := newTestRing(t, 3, nil, nil)
	ctx := context.Background()
	if _, err := tr.rings[0].Node().Apply(ctx, hostSet(ip1)); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.rings[0].Node().Apply(ctx, cluster.Command{Op: cluster.OpUserAssign, Hash: 9, IP: ip1, Now: 100, Expire: 900}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "converged", tr.converged)
	tr.rings[1].Close()
	tr.rings[2].Close()
	tr.rings[1], tr.rings[2] = nil, nil
	n := tr.rings[0].Node()
	var ok bool
	n.Read(func(s cluster.View) { _, ok = s.User("", 9) })
	if !ok {
		t.Fatal("mapped user lost")
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := n.Apply(wctx, hostSet(ip2))
	if !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("write without quorum: %v", err)
	}
	eventually(t, "peers unreachable", func() bool {
		n := 0
		for _, f := range tr.rings[0].List() {
			if f[4] == "unreachable" {
				n++
			}
		}
		return n == 2
	})
}

// TestLeaderRestartAndSnapshot: kill the leader, keep writing, restart it;
// it catches up from a snapshot (the log it missed is compacted) and every
// write answered OK is there.
func TestLeaderRestartAndSnapshot(t *testing.T) {
	tr := newTestRing(t, 3, nil, func(c *Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 64, 16, 50*time.Millisecond
	})
	ctx := context.Background()
	if _, err := tr.rings[0].Node().Apply(ctx, hostSet(ip1)); err != nil {
		t.Fatal(err)
	}
	l := tr.leader()
	if l < 0 {
		t.Fatal("no leader")
	}
	tr.rings[l].Close()
	tr.rings[l] = nil
	other := (l + 1) % 3
	for u := range 300 {
		c := cluster.Command{Op: cluster.OpUserAssign, Hash: uint32(u + 1), IP: ip1, Now: 100, Expire: 900}
		if _, err := applyRetry(ctx, tr.rings[other].Node(), c); err != nil {
			t.Fatalf("assign %d during election: %v", u, err)
		}
	}
	if err := tr.open(l); err != nil {
		t.Fatal(err)
	}
	tr.waitReady()
	eventually(t, "restarted leader caught up", tr.converged)
	tr.rings[l].Node().Read(func(s cluster.View) {
		if s.UserTotal() != 300 {
			t.Errorf("users %d", s.UserTotal())
		}
	})
}

// TestWrongSecret: a director with another secret cannot join.
func TestWrongSecret(t *testing.T) {
	tr := newTestRing(t, 1, nil, nil)
	extra := freeAddrs(t, 1)[0]
	_, err := Open(Config{Dir: t.TempDir(), Self: extra, Peers: []string{tr.addrs[0], extra}, Secret: "other", Logger: quiet(), JoinTimeout: time.Second})
	if !errors.Is(err, errAuth) {
		t.Fatalf("open with a wrong secret: %v", err)
	}
}

// TestTLS runs a ring of two over TLS.
func TestTLS(t *testing.T) {
	tr := newTestRing(t, 2, testTLS(t), nil)
	if _, err := tr.rings[tr.follower()].Node().Apply(context.Background(), hostSet(ip1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "converged", tr.converged)
}
