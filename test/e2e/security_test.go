package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// rssKB reads a process's resident set size.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestJunkLogins: 3,000 logins with 60 KB names from 3,000 addresses (the
// audit's attack, which took usher from 24 MB to 919 MB) are refused before
// routing: RSS grows by less than 50 MB and no user is mapped.
func TestJunkLogins(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 2})
	u := startUsher(t, cl, usherOpts{extra: "auth_failure_delay = 0"})
	pid := u.Pid()
	before := rssKB(t, pid)
	name := strings.Repeat("j", 60<<10)
	base := u.IP.As4()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				src := netip.AddrFrom4([4]byte{127, base[1], base[2] ^ byte(1+i/250), byte(1 + i%250)})
				if err := junkLogin(src, u.Addr(u.IMAPPort), name); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 3000 {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d logins went wrong, first: %s", len(errs), errs[0])
	}
	after := rssKB(t, pid)
	t.Logf("RSS %d KB before, %d KB after", before, after)
	if after-before > 50<<10 {
		t.Errorf("RSS grew by %d KB", after-before)
	}
	if users := u.mustAPI("directorMap", nil); len(users) != 0 {
		t.Errorf("%d users mapped, e.g. %.80v", len(users), users[0])
	}
}

// junkLogin sends one LOGIN with name and expects the usual failure.
func junkLogin(src netip.Addr, addr, name string) error {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second)) // against a hang, not a timing assertion
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		return fmt.Errorf("greeting %q %v", l, err)
	}
	if _, err := fmt.Fprintf(c, "a LOGIN \"%s\" \"x\"\r\n", name); err != nil {
		return err
	}
	l, err := r.ReadString('\n')
	if err != nil || l != "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n" {
		return fmt.Errorf("answer %.80q %v", l, err)
	}
	return nil
}
