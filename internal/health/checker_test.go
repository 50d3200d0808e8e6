package health

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flapper is a listener that greets like IMAP while up and is closed while
// down, switching every period.
type flapper struct {
	addr   netip.AddrPort
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	phases int // up/down switches so far
}

func startFlapper(t *testing.T, period time.Duration) *flapper {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flapper{addr: netip.MustParseAddrPort(l.Addr().String()), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			go greet(l)
			select {
			case <-f.stop:
				l.Close()
				return
			case <-time.After(period):
			}
			l.Close()
			f.mu.Lock()
			f.phases++
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			case <-time.After(period):
			}
			if l, err = net.Listen("tcp", f.addr.String()); err != nil {
				t.Errorf("relisten: %v", err)
				return
			}
			f.mu.Lock()
			f.phases++
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

// greet answers every connection to l with an IMAP greeting until l is closed.
func greet(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("* OK ready\r\n"))
		c.Close()
	}
}

// fakeLog stands in for the replicated log: it records what a checker saw
// and committed, in order.
type fakeLog struct {
	mu     sync.Mutex
	down   bool
	events []string // "+", "-" (check results), "D", "U" (committed verdicts)
}

func (l *fakeLog) deps(ip netip.Addr) Deps {
	return Deps{
		Active: func() bool { return true },
		Targets: func() []Target {
			l.mu.Lock()
			defer l.mu.Unlock()
			return []Target{{IP: ip, HealthDown: l.down}}
		},
		Report: func(_ context.Context, _ netip.Addr, down bool) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.down = down
			if down {
				l.events = append(l.events, "D")
			} else {
				l.events = append(l.events, "U")
			}
			return nil
		},
		Observe: func(_ netip.Addr, err error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if err == nil {
				l.events = append(l.events, "+")
			} else {
				l.events = append(l.events, "-")
			}
		},
	}
}

// checkHysteresis verifies that every committed verdict follows at least
// fall failures (down) or rise passes (up) in a row since the last one,
// and returns the number of transitions and failed checks.
func checkHysteresis(t *testing.T, name string, events []string, fall, rise int) (transitions, failures int) {
	t.Helper()
	run, last := 0, ""
	for i, e := range events {
		switch e {
		case "+", "-":
			if e == "-" {
				failures++
			}
			if e != last {
				run = 0
			}
			run, last = run+1, e
		case "D", "U":
			transitions++
			need, want := fall, "-"
			if e == "U" {
				need, want = rise, "+"
			}
			if last != want || run < need {
				t.Errorf("%s: %s committed at event %d after %d x %q: %v", name, e, i, run, last, events)
			}
			run, last = 0, ""
		}
	}
	return
}

// TestFlappingBackend: a listener up 2 s, down 2 s. With fall 3 at 0.5 s
// the state may follow it but never faster than 3 failures / 2 passes in a
// row; with fall 8 (4 s of failures) it never goes down at all.
func TestFlappingBackend(t *testing.T) {
	t.Parallel()
	f := startFlapper(t, 2*time.Second)
	var fast, slow fakeLog
	probe := Probe{Kind: KindIMAP, Port: int(f.addr.Port()), Timeout: 400 * time.Millisecond}
	cf := New(Config{Probe: probe, Interval: 500 * time.Millisecond, Fall: 3, Rise: 2}, fast.deps(f.addr.Addr()), NewMetrics())
	cs := New(Config{Probe: probe, Interval: 500 * time.Millisecond, Fall: 8, Rise: 2}, slow.deps(f.addr.Addr()), NewMetrics())
	// Two full cycles.
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		n := f.phases
		f.mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flapper stuck")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cf.Close()
	cs.Close()
	fast.mu.Lock()
	defer fast.mu.Unlock()
	slow.mu.Lock()
	defer slow.mu.Unlock()
	ft, ff := checkHysteresis(t, "fall 3", fast.events, 3, 2)
	st, sf := checkHysteresis(t, "fall 8", slow.events, 8, 2)
	t.Logf("fall 3: %d transitions, %d failed checks; fall 8: %d transitions, %d failed checks", ft, ff, st, sf)
	if ff == 0 || sf == 0 {
		t.Fatalf("the checks never saw the listener down: %v %v", fast.events, slow.events)
	}
	if ft > 4 {
		t.Errorf("fall 3: %d transitions in two cycles: %v", ft, fast.events)
	}
	if st != 0 {
		t.Errorf("fall 8 went down on a 2 s outage: %v", slow.events)
	}
}

// TestEvacuationFollowsActivity: a backend down by the checks with users is
// evacuated once at a time, and the evacuation stops when this director
// stops being the checking one.
func TestEvacuationFollowsActivity(t *testing.T) {
	t.Parallel()
	var active atomic.Bool
	active.Store(true)
	started := make(chan struct{}, 10)
	stopped := make(chan struct{}, 10)
	var rounds atomic.Int32
	ip := netip.MustParseAddr("127.0.0.1")
	c := New(Config{Probe: Probe{Kind: KindIMAP, Port: 1}, Interval: 100 * time.Millisecond, Fall: 1, Rise: 1}, Deps{
		Active:  active.Load,
		Targets: func() []Target { return []Target{{IP: ip, HealthDown: true, Evacuate: true}} },
		Report:  func(context.Context, netip.Addr, bool) error { return nil },
		Observe: func(netip.Addr, error) { rounds.Add(1) },
		Evacuate: func(ctx context.Context, _ netip.Addr) {
			started <- struct{}{}
			<-ctx.Done()
			stopped <- struct{}{}
		},
	}, NewMetrics())
	defer c.Close()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no evacuation")
	}
	// Several more rounds: no second evacuation of the host.
	deadline := time.Now().Add(10 * time.Second)
	for n := rounds.Load(); rounds.Load() < n+3; {
		if time.Now().After(deadline) {
			t.Fatal("the checker stopped checking")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(started) != 0 {
		t.Fatal("a second evacuation of the same host started")
	}
	active.Store(false)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("evacuation went on after the director stopped checking")
	}
}

// twoPorts returns a loopback port where nothing listens and a listener that
// greets (closed at the test's end).
func twoPorts(t *testing.T) (int, net.Listener) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go greet(l)
	return port, l
}

// TestWrongPortNeverTakesDown: a probe on a port where nothing listens (usher's
// backend_imap_port guessed, the logins go elsewhere) never puts the host down;
// once a login was proxied to the host's real port (Learn), the checks probe
// that port, pass, and a real outage there puts the host down.
func TestWrongPortNeverTakesDown(t *testing.T) {
	t.Parallel()
	wrong, l := twoPorts(t)
	real := netip.MustParseAddrPort(l.Addr().String())
	var log fakeLog
	c := New(Config{Probe: Probe{Kind: KindIMAP, Port: wrong, Timeout: time.Second}, Interval: 100 * time.Millisecond, Fall: 1, Rise: 1},
		log.deps(real.Addr()), NewMetrics())
	defer c.Close()
	wait := func(what string, done func(events []string) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			log.mu.Lock()
			ok := done(log.events)
			events := append([]string(nil), log.events...)
			log.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, events)
			}
		}
	}
	count := func(events []string, e string) (n int) {
		for _, x := range events {
			if x == e {
				n++
			}
		}
		return n
	}
	// never fails when e is among the events (copied: the checker's Observe takes the lock).
	never := func(e, why string) {
		t.Helper()
		log.mu.Lock()
		events := append([]string(nil), log.events...)
		log.mu.Unlock()
		if count(events, e) != 0 {
			t.Fatalf("%s: %v", why, events)
		}
	}
	wait("five failed checks on the wrong port", func(ev []string) bool { return count(ev, "-") >= 5 })
	never("D", "a host whose checks never passed was put down")
	// A POP3 login's port is not the IMAP check's.
	c.Learn(KindPOP3, real)
	wait("two more failed checks", func(ev []string) bool { return count(ev, "-") >= 7 })
	never("+", "the IMAP check probed a port learned from POP3")
	c.Learn(KindIMAP, real)
	wait("a passed check on the learned port", func(ev []string) bool { return count(ev, "+") >= 1 })
	l.Close()
	wait("the host down after an outage on the learned port", func(ev []string) bool { return count(ev, "D") >= 1 })
}

// TestKnownPort: on a port the passdb sends every login to, a host whose
// checks never passed goes down after fall failures, and a login's port does
// not replace it.
func TestKnownPort(t *testing.T) {
	t.Parallel()
	known, l := twoPorts(t)
	other := netip.MustParseAddrPort(l.Addr().String())
	var log fakeLog
	c := New(Config{Probe: Probe{Kind: KindIMAP, Port: known, Timeout: time.Second}, PortKnown: true,
		Interval: 100 * time.Millisecond, Fall: 2, Rise: 1}, log.deps(other.Addr()), NewMetrics())
	c.Learn(KindIMAP, other)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log.mu.Lock()
		events := append([]string(nil), log.events...)
		log.mu.Unlock()
		if slices.Contains(events, "+") {
			c.Close()
			t.Fatalf("a learned port replaced the known one: %v", events)
		}
		if slices.Contains(events, "D") {
			break
		}
		if time.Now().After(deadline) {
			c.Close()
			t.Fatalf("a host failing on its known port was never put down: %v", events)
		}
	}
	c.Close()
}
