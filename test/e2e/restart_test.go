package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestBackendRestartNoFailedLogin restarts the only backend (`doveadm stop`, then start) while
// 20 clients log in and out in a loop through usher. usher's reconnects (3, 1 s apart) ride out
// a backend that is back within 2 s: no client may see a failed login.
func TestBackendRestartNoFailedLogin(t *testing.T) {
	t.Parallel()
	const clients = 20
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: clients})
	u := startUsher(t, cl, usherOpts{})
	b := cl.Backends()[0]

	var logins, failures atomic.Int64
	var failed sync.Map // first failure per client, for the message
	stop := make(chan struct{})
	counts := make([]atomic.Int64, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := testenv.UserName(i + 1)
			// bounded: at most 2000 logins per client, and the test's own deadlines below
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				reply, err := loginOnce(u.Addr(u.IMAPPort), user)
				if err != nil || !strings.HasPrefix(reply, "a OK") {
					failures.Add(1)
					failed.LoadOrStore(user, fmt.Sprintf("%q %v", reply, err))
				}
				logins.Add(1)
				counts[i].Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	// everyone has logged in a few times: the backend is known to work
	everyone := func(n int64) func() bool {
		return func() bool {
			for i := range counts {
				if counts[i].Load() < n {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "every client logging in", everyone(3))

	// The backend's own outage: from its first greeting missed to its first greeting again.
	outageSeen := make(chan time.Duration, 1)
	probeStop := make(chan struct{})
	defer close(probeStop)
	go func() {
		var first time.Time
		for {
			c, err := net.DialTimeout("tcp", b.HostPort(b.IMAPPort), time.Second)
			ok := err == nil
			if ok {
				c.SetDeadline(time.Now().Add(time.Second))
				l, err := bufio.NewReader(c).ReadString('\n')
				ok = err == nil && strings.HasPrefix(l, "* OK")
				c.Close()
			}
			switch {
			case !ok && first.IsZero():
				first = time.Now()
			case ok && !first.IsZero():
				outageSeen <- time.Since(first)
				return
			}
			select {
			case <-probeStop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	before := logins.Load()
	down := time.Now()
	if out, err := exec.Command("doveadm", "-c", b.ConfigPath, "stop").CombinedOutput(); err != nil {
		t.Fatalf("doveadm stop: %v\n%s", err, out)
	}
	stopped := time.Since(down)
	if err := b.Stop(); err != nil { // waits for the master to be gone
		t.Fatal(err)
	}
	gone := time.Since(down)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	restart := time.Since(down)
	var outage time.Duration
	select {
	case outage = <-outageSeen:
	case <-time.After(30 * time.Second):
		t.Fatal("the probe saw no outage and recovery of the backend")
	}
	base := make([]int64, clients)
	for i := range counts {
		base[i] = counts[i].Load()
	}
	waitFor(t, "every client logging in after the restart", func() bool {
		for i := range counts {
			if counts[i].Load() < base[i]+3 {
				return false
			}
		}
		return true
	})
	t.Logf("backend greeted no one for %v (doveadm stop returned after %v, master gone after %v, listening again after %v); %d logins before, %d in all, %d failed",
		outage.Round(time.Millisecond), stopped.Round(time.Millisecond), gone.Round(time.Millisecond), restart.Round(time.Millisecond), before, logins.Load(), failures.Load())
	if outage > 2*time.Second {
		t.Logf("the backend took longer than 2 s to come back; failures are not counted against usher")
		return
	}
	if n := failures.Load(); n > 0 {
		var first []string
		failed.Range(func(k, v any) bool { first = append(first, fmt.Sprintf("%s: %s", k, v)); return len(first) < 5 })
		t.Fatalf("%d of %d logins failed across a %v backend restart: %s", n, logins.Load(), outage, strings.Join(first, "; "))
	}
}

// loginOnce connects, logs user in and out, and returns the tagged LOGIN reply.
func loginOnce(addr, user string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		return l, fmt.Errorf("greeting: %v", err)
	}
	fmt.Fprintf(c, "a LOGIN %s pass\r\n", user)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return l, err
		}
		if strings.HasPrefix(l, "a ") {
			fmt.Fprintf(c, "b LOGOUT\r\n")
			return strings.TrimRight(l, "\r\n"), nil
		}
	}
}
