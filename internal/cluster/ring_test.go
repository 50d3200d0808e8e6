package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func freeLoopbackAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	return addrs
}

// TestRing runs three voters over TCP on loopback: one leader accepts
// writes, followers refuse them with ErrUnavailable and converge.
func TestRing(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take seconds")
	}
	addrs := freeLoopbackAddrs(t, 3)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("n%d=%s", i, a))
	}
	nodes := make([]*Node, 3)
	for i := range nodes {
		n, err := Open(Config{Dir: t.TempDir(), NodeID: fmt.Sprintf("n%d", i), BindAddr: addrs[i], Peers: peers, Logger: quietLogger(), ApplyTimeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("open n%d: %v", i, err)
		}
		defer n.Close()
		nodes[i] = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A follower without a Forwarder refuses writes. (Leadership can move under load, so a
	// success is allowed too: it means the node had just become leader.)
	for _, n := range nodes {
		if n.IsLeader() {
			continue
		}
		if _, err := n.Apply(ctx, Command{Op: OpUserDrop, Hash: 1}); err != nil && !errors.Is(err, ErrUnavailable) {
			t.Errorf("follower apply: %v", err)
		}
	}
	applyOnLeader(ctx, t, nodes, hostSet(ip1, "", -1))
	applyOnLeader(ctx, t, nodes, assign("", 7, ip1, 100))
	for _, n := range nodes {
		for {
			var ok bool
			n.Read(func(s View) { _, ok = s.User("", 7) })
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("follower did not converge")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// applyOnLeader retries on whichever node leads, as a caller that gets
// ErrUnavailable would. Both commands used here are idempotent.
func applyOnLeader(ctx context.Context, t *testing.T, nodes []*Node, c Command) {
	t.Helper()
	for {
		for _, n := range nodes {
			if !n.IsLeader() {
				continue
			}
			_, err := n.Apply(ctx, c)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("apply: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader accepted %v", c.Op)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
