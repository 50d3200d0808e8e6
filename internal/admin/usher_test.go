package admin

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
	"github.com/usher-mail/usher/internal/router"
)

// fakeMover is a director that also drains and rebalances.
type fakeMover struct{ fakeDirector }

func (f *fakeMover) Hosts() []router.HostStatus {
	return []router.HostStatus{
		{Host: cluster.Host{Host: director.Host{IP: netip.MustParseAddr("10.0.0.1"), VhostCount: 100, Down: true}, Cause: cluster.CauseHealth, HealthDown: true, LastUpDown: 1700000000}, Users: 3},
		{Host: cluster.Host{Host: director.Host{IP: netip.MustParseAddr("10.0.0.2"), VhostCount: 50}, Cause: cluster.CauseAdmin, HealthDown: true, HoldUp: true}},
	}
}

func (f *fakeMover) Drain(ctx context.Context, ip netip.Addr, n int) (router.Progress, error) {
	if ip != netip.MustParseAddr("10.0.0.1") {
		return router.Progress{}, router.ErrNotFound
	}
	f.rec("drain " + ip.String() + " " + itoa(n))
	return router.Progress{Kind: router.JobDrain, Host: ip, State: "running", UsersLeft: 3, MaxParallel: max(n, 100)}, nil
}

func (f *fakeMover) Rebalance(ctx context.Context, n int) (router.Progress, error) {
	f.rec("rebalance " + itoa(n))
	return router.Progress{Kind: router.JobRebalance, State: "running", Total: 7, MaxParallel: 5}, nil
}

func (f *fakeMover) Jobs() []router.Progress {
	return []router.Progress{{Kind: router.JobDrain, Host: netip.MustParseAddr("10.0.0.1"), State: "failed", Err: "no\tway"}}
}

func TestUsherCommands(t *testing.T) {
	d := &fakeMover{}
	r, c := session(t, d)
	got := roundTrip(t, r, c, "USHER-HOST-HEALTH", true)
	want := []string{"10.0.0.1\tdown\thealth\tfailing\t0\t3\t1700000000", "10.0.0.2\tup\tadmin\tfailing\t1\t0\t0"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("USHER-HOST-HEALTH = %q, want %q", got, want)
	}
	for _, tc := range []struct{ line, want string }{
		{"USHER-HOST-DRAIN\t10.0.0.1\t5", "drain\t10.0.0.1\trunning\t3\t0\t0\t0\t0\t0\t0\t100\t"},
		{"USHER-HOST-DRAIN\t10.0.0.9", "NOTFOUND"},
		{"USHER-REBALANCE", "rebalance\t\trunning\t0\t0\t0\t0\t0\t0\t7\t5\t"},
		{"USHER-REBALANCE\t3", "rebalance\t\trunning\t0\t0\t0\t0\t0\t0\t7\t5\t"},
	} {
		if got := roundTrip(t, r, c, tc.line, false); got[0] != tc.want {
			t.Errorf("%q = %q, want %q", tc.line, got[0], tc.want)
		}
	}
	if got := roundTrip(t, r, c, "USHER-JOBS", true); len(got) != 1 || got[0] != "drain\t10.0.0.1\tfailed\t0\t0\t0\t0\t0\t0\t0\t0\tno\x01tway" {
		t.Errorf("USHER-JOBS = %q", got)
	}
	if strings.Join(d.calls, ",") != "drain 10.0.0.1 5,rebalance 0,rebalance 3" {
		t.Errorf("calls %v", d.calls)
	}
	// Bad arguments close the connection, as for Dovecot's commands.
	for _, line := range []string{"USHER-HOST-DRAIN", "USHER-HOST-DRAIN\tnot-an-ip", "USHER-HOST-DRAIN\t10.0.0.1\t0", "USHER-REBALANCE\tx"} {
		r, c := session(t, d)
		if got := roundTrip(t, r, c, line, false); got[0] != "EOF" {
			t.Errorf("%q = %q, want the connection closed", line, got)
		}
	}
	// A director that cannot move users does not know the commands.
	r, c = session(t, &fakeDirector{})
	if got := roundTrip(t, r, c, "USHER-JOBS", false); got[0] != "EOF" {
		t.Errorf("USHER-JOBS without a mover = %q", got)
	}
}
