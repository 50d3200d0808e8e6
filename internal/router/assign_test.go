package router

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

func committed(r *Router, user string) (netip.Addr, bool) {
	h, _ := r.Hash(user)
	var u cluster.User
	var ok bool
	r.node.Read(func(s cluster.View) { u, ok = s.User("", h) })
	return u.Host, ok
}

// otherDirector commits user on ip as another director's record would.
func otherDirector(t *testing.T, r *Router, user string, ip netip.Addr) {
	t.Helper()
	h, _ := r.Hash(user)
	c := cluster.Command{Op: cluster.OpUserRecord, Expire: 900, Records: []cluster.Record{{Hash: h, IP: ip, TS: r.now().Unix()}}}
	if _, err := r.node.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func other(ip netip.Addr) netip.Addr {
	if ip == b1 {
		return b2
	}
	return b1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A login the backend refused leaves no mapping behind; a successful one is
// in the log, and listed, as soon as USER-LIST asks.
func TestRecordOnlyAcceptedLogins(t *testing.T) {
	r, _, _ := newRouter(t, b1, b2)
	ip, err := r.Route(context.Background(), "mallory")
	if err != nil {
		t.Fatal(err)
	}
	r.Confirm("mallory", ip, false)
	if n := r.Provisional(); n != 0 {
		t.Fatalf("%d provisional entries after a refused login", n)
	}
	if us := r.Users(nil); len(us) != 0 {
		t.Fatalf("refused login listed: %v", us)
	}
	if _, ok := committed(r, "mallory"); ok {
		t.Fatal("refused login recorded")
	}
	ip, _ = login(r, "alice")
	us := r.Users(nil)
	h, _ := r.Hash("alice")
	if len(us) != 1 || us[0].Hash != h || us[0].Host != ip {
		t.Fatalf("USER-LIST right after alice's login: %v", us)
	}
	if got, ok := committed(r, "alice"); !ok || got != ip {
		t.Fatalf("alice recorded on %v %v, routed to %s", got, ok, ip)
	}
}

// Logins of one second are listed in the order they were routed, as Dovecot
// lists them: within a group commit however their backends answered; a
// later login of a known user moves it behind them.
func TestGroupCommitKeepsLoginOrder(t *testing.T) {
	r, _, c := newRouter(t, b1, b2)
	var users []string
	var ips []netip.Addr
	for i := range 6 {
		u := fmt.Sprintf("order%d", i)
		ip, err := r.Route(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		users, ips = append(users, u), append(ips, ip)
	}
	r.flushing <- struct{}{} // no group commit until all have answered
	for i := len(users) - 1; i >= 0; i-- {
		r.Confirm(users[i], ips[i], true)
	}
	<-r.flushing
	c.add(time.Second)
	login(r, users[1]) // a known user again, a second later: to the tail
	login(r, "order6")
	want := append(append(users[:1:1], users[2:]...), users[1], "order6")
	us := r.Users(nil)
	if len(us) != len(want) {
		t.Fatalf("listed %d users, want %d", len(us), len(want))
	}
	for i, u := range want {
		if h, _ := r.Hash(u); us[i].Hash != h {
			t.Fatalf("row %d is %d, want %s", i, us[i].Hash, u)
		}
	}
}

// Another director recorded the user first on another backend: this
// director's sessions of the user are kicked, the conflict counted, and the
// next login goes to the winner once the kick delay is over.
func TestConflictKicksTheLoser(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	ip, err := r.Route(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	winner := other(ip)
	otherDirector(t, r, "bob", winner)
	r.Confirm("bob", ip, true)
	waitFor(t, "the conflict", func() bool { return r.Conflicts() == 1 })
	h, _ := r.Hash("bob")
	if got := k.kicked(); len(got) != 1 || got[0] != h {
		t.Fatalf("kicked %v, want bob's hash %d", got, h)
	}
	if got, err := login(r, "bob"); err != nil || got != winner {
		t.Fatalf("after the conflict bob -> %s %v, want %s", got, err, winner)
	}
	if r.Conflicts() != 1 || r.Provisional() != 0 {
		t.Fatalf("conflicts %d, provisional %d", r.Conflicts(), r.Provisional())
	}
}

// A login still in flight on the losing backend when the conflict is found
// is kicked when it succeeds.
func TestConflictKicksALateLogin(t *testing.T) {
	r, k, _ := newRouter(t, b1, b2)
	ip, err := r.Route(context.Background(), "carl")
	if err != nil {
		t.Fatal(err)
	}
	winner := other(ip)
	otherDirector(t, r, "carl", winner)
	// A second login finds the provisional entry contradicted by the log.
	if got, err := r.Route(context.Background(), "carl"); err != nil || got != winner {
		t.Fatalf("second login -> %s %v, want %s", got, err, winner)
	}
	r.Confirm("carl", winner, true)
	if r.Conflicts() != 1 || len(k.kicked()) != 1 {
		t.Fatalf("conflicts %d, kicks %d after the second login", r.Conflicts(), len(k.kicked()))
	}
	r.Confirm("carl", ip, true) // the first login succeeds late
	if len(k.kicked()) != 2 {
		t.Fatalf("late session on the losing backend not kicked: %v", k.kicked())
	}
	if r.Provisional() != 0 {
		t.Fatalf("%d provisional entries left", r.Provisional())
	}
}

func TestMergeUsers(t *testing.T) {
	row := func(tag string, h uint32, exp int64) UserEntry { return UserEntry{Tag: tag, Hash: h, Expire: exp} }
	got := mergeUsers(
		[]UserEntry{row("", 1, 10), row("", 2, 20), row("t", 3, 5)},
		[]UserEntry{row("", 9, 10), row("t", 8, 30), row("", 7, 40), row("n", 6, 1)})
	want := []uint32{1, 9, 2, 7, 3, 8, 6}
	for i, h := range want {
		if i >= len(got) || got[i].Hash != h {
			t.Fatalf("merged %v, want hashes %v", got, want)
		}
	}
}

// An admin write comes after this director's earlier logins in the log: a
// login just before a HOST-FLUSH does not map its user again after it.
func TestFlushComesAfterEarlierLogins(t *testing.T) {
	r, _, _ := newRouter(t, b1, b2)
	ctx := context.Background()
	ip, err := login(r, "frank")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.FlushHost(ctx, &ip); err != nil {
		t.Fatal(err)
	}
	if err := r.flush(ctx); err != nil { // whatever is still pending
		t.Fatal(err)
	}
	if got, ok := committed(r, "frank"); ok {
		t.Fatalf("frank mapped to %s after the flush of its backend", got)
	}
}
