package penalty

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_800_000_000, 0)} }
func addr(s string) netip.Addr           { return netip.MustParseAddr(s) }
func fail(t *Table, ip, user, pw string) { _, a := t.Begin(addr(ip)); t.Fail(addr(ip), a, user, pw) }

func TestToSecs(t *testing.T) {
	want := map[int]int64{0: 0, 1: 4, 2: 8, 3: 15, 4: 15}
	for p, s := range want {
		if got := toSecs(p); got != s {
			t.Errorf("toSecs(%d) = %d, want %d", p, got, s)
		}
	}
}

func TestEscalation(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	ip := addr("192.0.2.1")
	wantDelays := []time.Duration{0, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second, 15 * time.Second}
	for i, want := range wantDelays {
		d, a := tab.Begin(ip)
		if d != want {
			t.Fatalf("attempt %d: delay %v, want %v", i, d, want)
		}
		if a != min(i, MaxPenalty) {
			t.Fatalf("attempt %d: attempt value %d", i, a)
		}
		tab.Fail(ip, a, "bob", fmt.Sprintf("pw%d", i))
		c.add(time.Second)
	}
	if got := tab.Dump()[0].Penalty; got != MaxPenalty {
		t.Fatalf("penalty %d, want capped at %d", got, MaxPenalty)
	}
}

func TestDecayAfter15s(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	ip := addr("192.0.2.1")
	fail(tab, "192.0.2.1", "u", "a")
	fail(tab, "192.0.2.1", "u", "b")
	c.add(14 * time.Second)
	if d, a := tab.Begin(ip); a != 2 || d != 8*time.Second {
		t.Fatalf("at 14 s: %v %d, want 8s 2", d, a)
	}
	c.add(time.Second)
	if d, a := tab.Begin(ip); a != 0 || d != 0 {
		t.Fatalf("at 15 s: %v %d, want 0 0", d, a)
	}
	// The record itself is still there until 29 s after the last update.
	if n := len(tab.Dump()); n != 1 {
		t.Fatalf("dump has %d records", n)
	}
}

func TestExpiry(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	fail(tab, "192.0.2.1", "u", "a")
	c.add(28 * time.Second)
	if n := len(tab.Dump()); n != 1 {
		t.Fatalf("at 28 s: %d records", n)
	}
	c.add(time.Second)
	if n := len(tab.Dump()); n != 0 {
		t.Fatalf("at 29 s: %d records, want expired", n)
	}
}

func TestRepeatedPasswordNotCountedTwice(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	fail(tab, "192.0.2.1", "bob", "wrong")
	first := tab.Dump()[0]
	c.add(2 * time.Second)
	fail(tab, "192.0.2.1", "bob", "wrong")
	r := tab.Dump()[0]
	if r.Penalty != 1 || !r.LastPenalty.Equal(first.LastPenalty) {
		t.Fatalf("repeat: %+v, want penalty 1 and last_penalty unchanged %v", r, first.LastPenalty)
	}
	if !r.LastUpdate.Equal(c.now()) {
		t.Fatalf("last_update %v, want %v", r.LastUpdate, c.now())
	}
	// Another password, or the same password for another user, counts.
	fail(tab, "192.0.2.1", "alice", "wrong")
	if r := tab.Dump()[0]; r.Penalty != 2 || !r.LastPenalty.Equal(c.now()) {
		t.Fatalf("new user: %+v", r)
	}
}

func TestNoPasswordAlwaysCounts(t *testing.T) {
	tab := New(newClock().now)
	fail(tab, "192.0.2.1", "bob", "")
	fail(tab, "192.0.2.1", "bob", "")
	if p := tab.Dump()[0].Penalty; p != 2 {
		t.Fatalf("penalty %d, want 2", p)
	}
}

func TestChecksum(t *testing.T) {
	// CRC-32 of "pw" continued over "user" is the CRC-32 of "pwuser".
	if got, want := Checksum("user", "pw"), Checksum("", "pwuser"); got != want {
		t.Fatalf("checksum %08x, want %08x", got, want)
	}
	if Checksum("user", "") != 0 {
		t.Fatal("no password must give 0")
	}
}

func TestSuccessResets(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	ip := addr("192.0.2.1")
	fail(tab, "192.0.2.1", "u", "a")
	fail(tab, "192.0.2.1", "u", "b")
	c.add(time.Second)
	_, a := tab.Begin(ip)
	tab.Succeed(ip, a)
	r := tab.Dump()[0]
	if r.Penalty != 0 || !r.LastPenalty.Equal(c.now()) {
		t.Fatalf("after success: %+v", r)
	}
	if d, a := tab.Begin(ip); d != 0 || a != 0 {
		t.Fatalf("after success Begin: %v %d", d, a)
	}
}

func TestSuccessWithoutPenaltyCreatesNothing(t *testing.T) {
	tab := New(newClock().now)
	ip := addr("192.0.2.1")
	_, a := tab.Begin(ip)
	tab.Succeed(ip, a)
	if n := len(tab.Dump()); n != 0 {
		t.Fatalf("%d records", n)
	}
}

func TestIdent(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":               "192.0.2.1",
		"::ffff:192.0.2.1":        "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1::",
		"2001:db8:1:ffff::1%eth0": "2001:db8:1::",
		"::1":                     "::",
	}
	for in, want := range cases {
		if got := Ident(addr(in)); got != want {
			t.Errorf("Ident(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestIPv6SharesPenaltyPer48(t *testing.T) {
	tab := New(newClock().now)
	fail(tab, "2001:db8:1::1", "u", "a")
	if d, a := tab.Begin(addr("2001:db8:1:9::2")); a != 1 || d != 4*time.Second {
		t.Fatalf("same /48: %v %d", d, a)
	}
	if _, a := tab.Begin(addr("2001:db8:2::1")); a != 0 {
		t.Fatalf("other /48: %d", a)
	}
}

func TestDumpOrderOldestFirst(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	fail(tab, "192.0.2.1", "u", "a")
	c.add(time.Second)
	fail(tab, "192.0.2.2", "u", "a")
	c.add(time.Second)
	fail(tab, "192.0.2.1", "u", "b") // moves .1 to the newest end
	d := tab.Dump()
	if len(d) != 2 || d[0].IP != "192.0.2.2" || d[1].IP != "192.0.2.1" {
		t.Fatalf("order: %+v", d)
	}
}

func TestBoundedSize(t *testing.T) {
	c := newClock()
	tab := New(c.now)
	tab.SetMaxIdents(3)
	for i := 1; i <= 5; i++ {
		fail(tab, fmt.Sprintf("192.0.2.%d", i), "u", "a")
		c.add(time.Second)
	}
	d := tab.Dump()
	if len(d) != 3 || d[0].IP != "192.0.2.3" {
		t.Fatalf("evicted wrong records: %+v", d)
	}
}

func TestReset(t *testing.T) {
	tab := New(newClock().now)
	fail(tab, "192.0.2.1", "u", "a")
	tab.Reset()
	if tab.Len() != 0 || len(tab.Dump()) != 0 {
		t.Fatal("reset left records")
	}
	fail(tab, "192.0.2.1", "u", "a")
	if tab.Len() != 1 {
		t.Fatal("table unusable after reset")
	}
}

func TestChecksumListBounded(t *testing.T) {
	tab := New(newClock().now)
	for i := range 20 {
		fail(tab, "192.0.2.1", "u", fmt.Sprint(i))
	}
	tab.mu.Lock()
	n := len(tab.byKey["192.0.2.1"].checksums)
	tab.mu.Unlock()
	if n != maxChecksums {
		t.Fatalf("%d checksums kept", n)
	}
}

func TestInvalidAddrIgnored(t *testing.T) {
	tab := New(nil)
	var zero netip.Addr
	if d, a := tab.Begin(zero); d != 0 || a != 0 {
		t.Fatal("invalid addr penalised")
	}
	tab.Fail(zero, 0, "u", "p")
	tab.Succeed(zero, 1)
	if tab.Len() != 0 {
		t.Fatal("invalid addr recorded")
	}
}

// Concurrent failures, successes and dumps from many goroutines on overlapping addresses
// leave the table as the same operations would one after another: every address has its one
// record, each ended with a success (penalty 0), and the dump lists each address once.
func TestConcurrent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := New(func() time.Time { return now })
	const goroutines, ips = 4, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ips {
				// Every goroutine works on the same addresses, so the records are contended.
				ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
				_, a := tab.Begin(ip)
				tab.Fail(ip, a, "u", "p"+strconv.Itoa(g))
				tab.Succeed(ip, a+1)
				if len(tab.Dump()) > ips {
					t.Errorf("dump lists more records than addresses")
					return
				}
			}
		}()
	}
	wg.Wait()
	d := tab.Dump()
	if len(d) != ips || tab.Len() != ips {
		t.Fatalf("%d records in the dump, Len %d, want %d", len(d), tab.Len(), ips)
	}
	seen := map[string]bool{}
	for _, r := range d {
		if seen[r.IP] {
			t.Fatalf("%s listed twice", r.IP)
		}
		seen[r.IP] = true
		if r.Penalty != 0 {
			t.Fatalf("%s has penalty %d after its last authentication succeeded", r.IP, r.Penalty)
		}
	}
}

// The login pipeline's view of the table (internal/login declares it).
var _ interface {
	Begin(ip netip.Addr) (delay time.Duration, attempt int)
	Fail(ip netip.Addr, attempt int, user, password string)
	Succeed(ip netip.Addr, attempt int)
} = (*Table)(nil)
