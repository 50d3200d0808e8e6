package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

// FreePort returns a TCP port that was free on ip a moment ago (bind to port 0, then close).
// Only loopback addresses are accepted.
func FreePort(t testing.TB, ip netip.Addr) int {
	t.Helper()
	p, err := freePort(ip)
	if err != nil {
		t.Fatalf("testenv: FreePort(%v): %v", ip, err)
	}
	return p
}

// handedOut remembers the ports FreePort gave this process: the kernel may
// offer a port again as soon as the probe closes it, and two listeners of
// one test must not be given the same one.
var handedOut = struct {
	sync.Mutex
	ports map[netip.AddrPort]bool
}{ports: map[netip.AddrPort]bool{}}

func freePort(ip netip.Addr) (int, error) {
	if !ip.IsLoopback() {
		return 0, fmt.Errorf("%v is not a loopback address", ip)
	}
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOut.Lock()
		ap := netip.AddrPortFrom(ip, uint16(port))
		seen := handedOut.ports[ap]
		handedOut.ports[ap] = true
		handedOut.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, errors.New("no fresh port after 100 tries")
}

func portFree(ip netip.Addr, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// RandomLoopback returns 127.X.Y.host with random X (never 0, which the shared anchor and
// 127.0.0.1 live in) and Y, so that concurrent test processes, which all pick ports from the
// same ephemeral range, almost never even share an address. Neighbours (Next) are in the same
// 127.X.Y.0/24.
func RandomLoopback(host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), host})
}

// randomLoopbackIPs returns n consecutive addresses 127.X.Y.11.. (RandomLoopback).
func randomLoopbackIPs(n int) ([]netip.Addr, error) {
	if n > 240 {
		return nil, fmt.Errorf("at most 240 backends per cluster (asked for %d)", n)
	}
	out := make([]netip.Addr, n)
	out[0] = RandomLoopback(11)
	for i := 1; i < n; i++ {
		out[i] = out[i-1].Next()
	}
	return out, nil
}

// freePorts fills the zero fields of want with ports free on every ip, distinct from each other.
func freePorts(want Ports, ips []netip.Addr) (Ports, error) {
	used := map[int]bool{}
	for _, p := range want.list() {
		used[p] = true
	}
	pick := func(p *int) error {
		if *p != 0 {
			return nil
		}
		for range 50 {
			cand, err := freePort(ips[0])
			if err != nil {
				return err
			}
			if used[cand] {
				continue
			}
			ok := true
			for _, ip := range ips[1:] {
				ok = ok && portFree(ip, cand)
			}
			if ok {
				used[cand] = true
				*p = cand
				return nil
			}
		}
		return errors.New("no port free on every backend address")
	}
	for _, p := range []*int{&want.IMAP, &want.POP3, &want.LMTP, &want.Sieve, &want.HTTP, &want.Doveadm} {
		if err := pick(p); err != nil {
			return Ports{}, err
		}
	}
	return want, nil
}
