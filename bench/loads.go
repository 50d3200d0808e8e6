package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const benchPassword = "pass"

// bulkTimeout bounds one bulk run even if a contender stalls.
const bulkTimeout = 5 * time.Minute

func userName(i int) string { return fmt.Sprintf("bench%05d", i) }

// stormResult is one login storm: cycles are full connect/LOGIN/SELECT/LOGOUT rounds.
type stormResult struct {
	Cycles   int
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	P50, P99 time.Duration // connect to LOGIN's tagged OK
	CPUSec   float64       // the contender's CPU time (user+system, all processes) during the storm; 0: not measured
	// BackendCPUSec is the real Dovecot backends' CPU time during the storm (0: fake backends):
	// what a login costs behind the director, which caps every contender on a shared machine.
	BackendCPUSec float64
}

// cpuPerLogin is the contender's CPU time per completed cycle, in microseconds.
func (r stormResult) cpuPerLogin() float64 {
	if r.Cycles == 0 {
		return 0
	}
	return r.CPUSec * 1e6 / float64(r.Cycles)
}

// backendCPUPerLogin is the backends' CPU time per completed cycle, in microseconds.
func (r stormResult) backendCPUPerLogin() float64 {
	if r.Cycles == 0 {
		return 0
	}
	return r.BackendCPUSec * 1e6 / float64(r.Cycles)
}

func (r stormResult) perSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Cycles) / r.Elapsed.Seconds()
}

// storm runs c clients until d has passed or max cycles were started, cycling through users
// user names from first on.
func storm(t target, c int, d time.Duration, max, first, users int, useTLS bool) stormResult {
	var (
		started atomic.Int64
		errs    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		firstE  string
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	begin := time.Now()
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				n := started.Add(1)
				if n > int64(max) {
					break
				}
				l, err := cycle(t, userName(first+int(n)%users), useTLS)
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstE = err.Error()
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, l)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := stormResult{Cycles: len(lat), Errors: int(errs.Load()), FirstErr: firstE, Elapsed: time.Since(begin)}
	res.P50, res.P99 = percentile(lat, 50), percentile(lat, 99)
	return res
}

// cycle is one client's life: connect, (STARTTLS,) LOGIN, SELECT INBOX, LOGOUT.
func cycle(t target, user string, useTLS bool) (time.Duration, error) {
	start := time.Now()
	cl, err := dial(t, netip.Addr{})
	if err != nil {
		return 0, err
	}
	defer cl.close()
	if useTLS {
		if err := cl.startTLS(); err != nil {
			return 0, fmt.Errorf("starttls: %w", err)
		}
	}
	if err := cl.login(user, benchPassword); err != nil {
		return 0, err
	}
	lat := time.Since(start)
	if err := cl.cmd("b", "SELECT INBOX"); err != nil {
		return 0, err
	}
	cl.logout()
	return lat, nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := (len(d)*p + 99) / 100
	return d[max(0, min(len(d)-1, i-1))]
}

// idleSessions logs n sessions in (par at a time, within d) and keeps them open; close them
// with the returned function. It returns how many are held and the first error.
func idleSessions(t target, n, par, users int, d time.Duration) (held []*imapClient, firstErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1))
				if i > n {
					return
				}
				src := t.srcIPs[i%len(t.srcIPs)]
				cl, err := dial(t, src)
				if err == nil {
					err = cl.login(userName(i%users+1), benchPassword)
					if err != nil {
						cl.close()
					}
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					cl.keepAlive()
					held = append(held, cl)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(held) < n && firstErr == nil {
		firstErr = fmt.Errorf("only %d of %d sessions within %v", len(held), n, d)
	}
	return held, firstErr
}

func closeAll(cls []*imapClient) {
	for _, cl := range cls {
		cl.close()
	}
}

// bulkResult is bytes of message data received by all streams together.
type bulkResult struct {
	Bytes   int64
	Elapsed time.Duration
}

func (r bulkResult) mbPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// bulk logs in streams sessions, then times FETCH 1:* BODY[] on all of them at once, each
// repeated rounds times.
func bulk(t target, streams, rounds int) (bulkResult, error) {
	cls := make([]*imapClient, 0, streams)
	defer func() { closeAll(cls) }()
	for i := 0; i < streams; i++ {
		cl, err := dial(t, netip.Addr{})
		if err != nil {
			return bulkResult{}, err
		}
		cls = append(cls, cl)
		if err := cl.login(userName(i+1), benchPassword); err != nil {
			return bulkResult{}, err
		}
		if err := cl.cmd("b", "SELECT INBOX"); err != nil {
			return bulkResult{}, err
		}
		cl.keepAlive()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.c.SetDeadline(time.Now().Add(bulkTimeout))
			for r := 0; r < rounds; r++ {
				if err := cl.cmd("f", "FETCH 1:* BODY[]"); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	res := bulkResult{Elapsed: time.Since(start)}
	for _, cl := range cls {
		res.Bytes += int64(cl.n)
	}
	return res, first
}
