package router

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
)

type fakeKicker struct {
	mu     sync.Mutex
	hashes []uint32
	live   []LiveKey
	users  []string
	more   chan struct{} // closed and replaced at each KickHash
}

func (k *fakeKicker) KickHash(h uint32, reason string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hashes = append(k.hashes, h)
	if k.more != nil {
		close(k.more)
		k.more = nil
	}
	return 1
}

// waitKicked returns the kicked hashes once there are n, failing the test
// if that takes more than 10 s.
func (k *fakeKicker) waitKicked(t *testing.T, n int) []uint32 {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		k.mu.Lock()
		if len(k.hashes) >= n {
			defer k.mu.Unlock()
			return append([]uint32(nil), k.hashes...)
		}
		if k.more == nil {
			k.more = make(chan struct{})
		}
		more := k.more
		k.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("%d kicks after 10 s, want %d", len(k.kicked()), n)
		}
	}
}

func (k *fakeKicker) KickUser(u, reason string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.users = append(k.users, u)
	return 1
}

func (k *fakeKicker) Live() []LiveKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.live
}

func (k *fakeKicker) kicked() []uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]uint32(nil), k.hashes...)
}

var (
	b1 = netip.MustParseAddr("10.0.0.1")
	b2 = netip.MustParseAddr("10.0.0.2")
	b3 = netip.MustParseAddr("10.0.0.3")
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newRouter(t *testing.T, hosts ...netip.Addr) (*Router, *fakeKicker, *clock) {
	t.Helper()
	var r *Router
	var rmu sync.Mutex
	onKick := func(k cluster.Kick) {
		rmu.Lock()
		defer rmu.Unlock()
		if r != nil {
			r.OnKick(k)
		}
	}
	node, err := cluster.Open(cluster.Config{Dir: t.TempDir(), OnKick: onKick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	var init []cluster.Host
	var dh []director.Host
	for _, h := range hosts {
		init = append(init, cluster.Host{Host: director.Host{IP: h, VhostCount: 100}})
		dh = append(dh, director.Host{IP: h, VhostCount: 100})
	}
	if _, err := node.Apply(context.Background(), cluster.Command{Op: cluster.OpInitHosts, Hosts: init}); err != nil {
		t.Fatal(err)
	}
	k := &fakeKicker{}
	rmu.Lock()
	r = New(node, k, Config{Expire: 15 * time.Minute, KickDelay: 50 * time.Millisecond, QueueTimeout: 300 * time.Millisecond, InitialHosts: dh}, nil)
	rmu.Unlock()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	r.now = c.now
	t.Cleanup(r.Close)
	return r, k, c
}

func ringOf(r *Router) *director.Rings {
	rings, _ := r.currentRings()
	return rings
}

// login is a successful login: routed, and the backend accepted it.
func login(r *Router, user string) (netip.Addr, error) {
	ip, err := r.Route(context.Background(), user)
	if err == nil {
		r.Confirm(user, ip, true)
	}
	return ip, err
}

func TestRouteFollowsRingAndSticks(t *testing.T) {
	r, _, _ := newRouter(t, b1, b2)
	ctx := context.Background()
	rings := director.NewRings([]director.Host{{IP: b1, VhostCount: 100}, {IP: b2, VhostCount: 100}})
	first := map[string]netip.Addr{}
	for i := 0; i < 50; i++ {
		u := fmt.Sprintf("user%d", i)
		got, err := login(r, u)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := director.UserHash("%Lu", u)
		if want, _ := rings.Lookup("", h); got != want {
			t.Fatalf("%s -> %s, ring says %s", u, got, want)
		}
		first[u] = got
	}
	// A new host with many vhosts changes the ring but not existing users.
	if err := r.SetHost(ctx, b3, "", 1000, false); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for u, ip := range first {
		got, err := login(r, u)
		if err != nil {
			t.Fatal(err)
		}
		if got != ip {
			t.Fatalf("%s moved from %s to %s after add", u, ip, got)
		}
		if l, _ := r.LookupUser(u, ""); l.Hashed != ip {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("the new host took no point of the ring; test proves nothing")
	}
}

func TestExpiredUserRehashes(t *testing.T) {
	r, _, c := newRouter(t, b1, b2)
	ctx := context.Background()
	h, _ := r.Hash("alice")
	other := b1
	if ring, _ := ringOf(r).Lookup("", h); ring == b1 {
		other = b2
	}
	if err := r.Move(ctx, "alice", other); err != nil {
		t.Fatal(err)
	}
	l, _ := r.LookupUser("alice", "")
	if l.Current != other {
		t.Fatalf("alice on %s, want %s", l.Current, other)
	}
	c.add(15*time.Minute + time.Second)
	if l, _ := r.LookupUser("alice", ""); l.Current.IsValid() {
		t.Fatalf("expired user still mapped to %s", l.Current)
	}
	got, err := login(r, "alice")
	if err != nil || got != l.Hashed {
		t.Fatalf("after expiry alice -> %s %v, want the ring's %s", got, err, l.Hashed)
	}
}

func TestDownKeepsUsersAndNewUsersAvoidIt(t *testing.T) {
	r, _, _ := newRouter(t, b1, b2)
	ctx := context.Background()
	var onB1 []string
	for i := 0; len(onB1) < 5 && i < 200; i++ {
		u := fmt.Sprintf("u%d", i)
		if ip, _ := login(r, u); ip == b1 {
			onB1 = append(onB1, u)
		}
	}
	if err := r.SetDown(ctx, b1, true); err != nil {
		t.Fatal(err)
	}
	for _, u := range onB1 {
		if ip, _ := login(r, u); ip != b1 {
			t.Fatalf("%s left the down host for %s", u, ip)
		}
	}
	for i := 1000; i < 1100; i++ {
		if ip, _ := login(r, fmt.Sprintf("u%d", i)); ip != b2 {
			t.Fatalf("new user went to %s while b1 is down", ip)
		}
	}
	if err := r.SetDown(ctx, netip.MustParseAddr("10.9.9.9"), true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("down of unknown host: %v", err)
	}
}

func TestMoveKicksAndHoldsLogins(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	ctx := context.Background()
	ip, _ := login(r, "bob")
	dst := b1
	if ip == b1 {
		dst = b2
	}
	if err := r.Move(ctx, "bob", dst); err != nil {
		t.Fatal(err)
	}
	h, _ := r.Hash("bob")
	if got := k.kicked(); len(got) != 1 || got[0] != h {
		t.Fatalf("kicked %v, want bob's hash %d", got, h)
	}
	// A second move during the kick delay is refused, as Dovecot's TRYAGAIN.
	if err := r.Move(ctx, "bob", ip); !errors.Is(err, ErrTryAgain) {
		t.Fatalf("second move: %v", err)
	}
	// An unknown host is NOTFOUND even during the kick delay (Dovecot checks the host first).
	if err := r.Move(ctx, "bob", netip.MustParseAddr("10.9.9.8")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("move to unknown host while moving: %v", err)
	}
	// A login waits out the delay, then lands on the new host.
	if got, err := login(r, "bob"); err != nil || got != dst {
		t.Fatalf("after move bob -> %s %v, want %s", got, err, dst)
	}
	if err := r.Move(ctx, "bob", netip.MustParseAddr("10.9.9.9")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("move to unknown host: %v", err)
	}
}

// Of two moves of one user at once, exactly one moves it and kicks its
// sessions; the other gets TRYAGAIN, as the second of two sequential moves
// does. Both moves meet at their first reading of the clock, so neither
// runs ahead to mark the user before the other has looked.
func TestConcurrentMovesOneWins(t *testing.T) {
	r, k, c := newRouter(t, b1, b2)
	ctx := context.Background()
	ip, err := login(r, "mia")
	if err != nil {
		t.Fatal(err)
	}
	dst := other(ip)
	var calls atomic.Int32
	met := make(chan struct{})
	r.now = func() time.Time {
		switch calls.Add(1) {
		case 1:
			select {
			case <-met:
			case <-time.After(5 * time.Second):
				t.Error("the second move never read the clock while the first waited")
			}
		case 2:
			close(met)
		}
		return c.now()
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- r.Move(ctx, "mia", dst) }()
	}
	moved := 0
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			moved++
		case !errors.Is(err, ErrTryAgain):
			t.Fatalf("move: %v", err)
		}
	}
	if moved != 1 {
		t.Fatalf("%d of 2 concurrent moves went through, want 1 (the other TRYAGAIN)", moved)
	}
	if got := len(k.kicked()); got != 1 {
		t.Fatalf("%d local kicks, want 1", got)
	}
}

func TestNoHostsIsTempFail(t *testing.T) {
	r, _, _ := newRouter(t)
	if _, err := r.Route(context.Background(), "carol"); !errors.Is(err, ErrTempFail) {
		t.Fatalf("route with no hosts: %v", err)
	}
}

func TestResetUsersMovesOnlyChangedUsers(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	// A kick delay far shorter than a commit: the mark this director sets
	// when it kicks must outlast the commit of its own kick, or applying
	// that kick closes the user's sessions here a second time (as happened
	// with the 50 ms delay on a loaded machine).
	cfg := *r.config()
	cfg.KickDelay = time.Microsecond
	r.cfg.Store(&cfg)
	ctx := context.Background()
	for i := range 40 {
		if _, err := login(r, fmt.Sprintf("r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SetHost(ctx, b3, "", 1000, false); err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, u := range r.Users(nil) {
		if want, _ := ringOf(r).Lookup(u.Tag, u.Hash); want != u.Host {
			changed++
		}
	}
	if err := r.ResetUsers(ctx, nil, 5); err != nil {
		t.Fatal(err)
	}
	kicked := map[uint32]int{}
	for _, h := range k.kicked() {
		kicked[h]++
		if kicked[h] > 1 {
			t.Fatalf("user %d kicked %d times", h, kicked[h])
		}
	}
	if len(kicked) != changed || changed == 0 {
		t.Fatalf("kicked %d users, %d had a new ring host", len(kicked), changed)
	}
	for _, u := range r.Users(nil) {
		if want, _ := ringOf(r).Lookup(u.Tag, u.Hash); want != u.Host {
			t.Fatalf("user %d still on %s after flush, ring says %s", u.Hash, u.Host, want)
		}
	}
	if err := r.ResetUsers(ctx, &netip.Addr{}, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("flush of unknown host: %v", err)
	}
}

// A kick committed by another director holds the user's logins here for
// the kick delay and closes its sessions.
func TestOnKickFromAnotherDirector(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	h, _ := r.Hash("dave")
	r.OnKick(cluster.Kick{Hash: h, Reason: "Kicked via director (user moved)"})
	r.mu.Lock()
	_, moving := r.moving[key{"", h}]
	r.mu.Unlock()
	if !moving {
		t.Fatal("kicked user not held")
	}
	// The sessions are closed off raft's apply goroutine.
	if got := k.waitKicked(t, 1); len(got) != 1 || got[0] != h {
		t.Fatalf("kicked %v, want %d", got, h)
	}
	if _, err := r.Route(context.Background(), "dave"); err != nil {
		t.Fatalf("login after the kick delay: %v", err)
	}
}

func TestKickUserCommitsAndKicksHere(t *testing.T) {
	r, k, _ := newRouter(t, b1)
	if err := r.Kick(context.Background(), "erin"); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.users) == 0 || k.users[0] != "erin" {
		t.Fatalf("kicked users %v", k.users)
	}
}

// Open sessions keep their mappings alive in the ring they were routed in, a director_tag's
// too, as Dovecot's proxy notifies the director for every tag.
func TestRefreshLiveEveryTag(t *testing.T) {
	r, k, _ := newRouter(t, netip.MustParseAddr("10.0.0.1"))
	k.mu.Lock()
	k.live = []LiveKey{{Hash: 7}, {Tag: "t", Hash: 9}}
	k.mu.Unlock()
	r.Close() // no background flush takes the refreshes before they are looked at
	r.refreshLive()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, want := range []key{{"", 7}, {"t", 9}} {
		if _, ok := r.pend[want]; !ok {
			t.Errorf("mapping %v not refreshed: %v", want, r.pend)
		}
	}
}
