package router

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// routeUsers logs n users in and returns how many landed on each host.
func routeUsers(t *testing.T, r *Router, n int) map[netip.Addr]int {
	t.Helper()
	out := map[netip.Addr]int{}
	for i := range n {
		ip, err := login(r, fmt.Sprintf("drainuser%d", i))
		if err != nil {
			t.Fatal(err)
		}
		out[ip]++
	}
	return out
}

func waitJob(t *testing.T, r *Router, kind string, ip netip.Addr) Progress {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, p := range r.Jobs() {
			if p.Kind == kind && p.Host == ip && p.State != "running" {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s did not finish: %+v", kind, ip, r.Jobs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDrain(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	before := routeUsers(t, r, 60)
	if before[b1] == 0 {
		t.Fatal("no user on b1")
	}
	if _, err := r.Drain(context.Background(), b3, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drain of an unknown host: %v", err)
	}
	p, err := r.Drain(context.Background(), b1, 5)
	if err != nil || p.State != "running" || p.MaxParallel != 5 {
		t.Fatalf("drain: %+v %v", p, err)
	}
	// A second drain of the same host joins the first.
	if p2, err := r.Drain(context.Background(), b1, 7); err != nil || p2.MaxParallel != 5 {
		t.Fatalf("second drain: %+v %v", p2, err)
	}
	p = waitJob(t, r, JobDrain, b1)
	if p.State != "done" || p.Moved != before[b1] || p.UsersLeft != 0 || p.PeakInFlight > 5 || p.PeakInFlight == 0 {
		t.Errorf("drain finished as %+v (users before %d)", p, before[b1])
	}
	if n := len(r.Users(&b1)); n != 0 {
		t.Errorf("%d users left on b1", n)
	}
	if h, _ := r.host(b1); h.VhostCount != 0 {
		t.Errorf("drained host has vhost count %d", h.VhostCount)
	}
	kicked := map[uint32]bool{}
	for _, h := range k.kicked() {
		kicked[h] = true
	}
	if len(kicked) != before[b1] {
		t.Errorf("%d users kicked of %d moved", len(kicked), before[b1])
	}
	// New users do not go to a drained host.
	if got := routeUsers(t, r, 80); got[b1] != 0 {
		t.Errorf("new users on the drained host: %v", got)
	}
}

func TestDrainLastHost(t *testing.T) {
	r, _, _ := newRouter(t, b1)
	routeUsers(t, r, 5)
	if _, err := r.Drain(context.Background(), b1, 0); err != nil {
		t.Fatal(err)
	}
	if p := waitJob(t, r, JobDrain, b1); p.State != "failed" || p.Err != ErrNoTarget.Error() || p.UsersLeft != 5 {
		t.Errorf("drain of the only host: %+v", p)
	}
}

func TestEvacuateAndRebalance(t *testing.T) {
	r, _, _ := newRouter(t, b1, b2)
	ctx := context.Background()
	before := routeUsers(t, r, 60)
	// Evacuation moves nobody off a host that is up.
	r.Evacuate(ctx, b1)
	if p := waitJob(t, r, JobEvacuate, b1); p.Moved != 0 || p.UsersLeft != before[b1] {
		t.Fatalf("evacuation of an up host: %+v", p)
	}
	if err := r.SetHealth(ctx, b1, true); err != nil {
		t.Fatal(err)
	}
	if h, _ := r.host(b1); !h.Down || h.Cause != cluster.CauseHealth {
		t.Fatalf("health-down host: %+v", h)
	}
	r.Evacuate(ctx, b1)
	if p := waitJob(t, r, JobEvacuate, b1); p.State != "done" || p.Moved != before[b1] || p.UsersLeft != 0 {
		t.Fatalf("evacuation: %+v", p)
	}
	// Back up: nobody is moved back, new users go to both again.
	if err := r.SetHealth(ctx, b1, false); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Users(&b1)); n != 0 {
		t.Errorf("%d users moved back", n)
	}
	// Rebalance puts the moved users back where the ring wants them.
	if _, err := r.Rebalance(ctx, 3); err != nil {
		t.Fatal(err)
	}
	p := waitJob(t, r, JobRebalance, netip.Addr{})
	if p.State != "done" || p.Moved != before[b1] || p.PeakInFlight > 3 {
		t.Errorf("rebalance: %+v", p)
	}
	if n := len(r.Users(&b1)); n != before[b1] {
		t.Errorf("after rebalance %d users on b1, want %d", n, before[b1])
	}
}
