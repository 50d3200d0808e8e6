package ring

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// peerStats is what DIRECTOR-LIST shows about one peer. Counters are
// atomics because every connection goroutine updates them.
type peerStats struct {
	in, out     atomic.Int64
	lastRead    atomic.Int64 // unix seconds
	lastWrite   atomic.Int64
	lastFailed  atomic.Int64
	pingMicros  atomic.Int64
	role        atomic.Value // string, from the last ping answer
	reachable   atomic.Bool
	applied     atomic.Uint64
	lastPingAns atomic.Int64
	bufPeak     atomic.Int64 // largest send queue seen, in bytes

	conns map[*countingConn]struct{} // live connections with the peer; peerTable.mu
}

// peerTable keys stats by ring address. The whole ring is also counted in
// total, for the row of the director itself.
type peerTable struct {
	now   func() time.Time
	mu    sync.Mutex
	peers map[string]*peerStats
	total peerStats

	// members are the ring addresses of the last forget; removed are former members still
	// listed as "removed" (Dovecot keeps a removed director until a timer started by the
	// first removal of a batch fires, then forgets the whole batch).
	members      map[string]bool
	removed      map[string]int64 // address -> its last failed contact, unix seconds
	removedUntil time.Time
}

// removedListed is Dovecot's DIRECTOR_DELAYED_DIR_REMOVE_MSECS.
const removedListed = 30 * time.Second

func newPeerTable(now func() time.Time) *peerTable {
	return &peerTable{now: now, peers: map[string]*peerStats{}, removed: map[string]int64{}}
}

func (t *peerTable) get(addr string) *peerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[addr]
	if !ok {
		p = &peerStats{}
		p.role.Store("")
		t.peers[addr] = p
	}
	return p
}

// forget drops the stats of peers not in keep, the ring's members; a member that left is
// listed as removed for a while (markRemoved).
func (t *peerTable) forget(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a := range t.members {
		if !keep[a] {
			t.markRemovedLocked(a)
		}
	}
	for a := range keep {
		delete(t.removed, a) // added again
	}
	t.members = keep
	for a := range t.peers {
		if !keep[a] {
			delete(t.peers, a)
		}
	}
}

// markRemoved lists addr as a removed director from now on.
func (t *peerTable) markRemoved(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.markRemovedLocked(addr)
}

func (t *peerTable) markRemovedLocked(addr string) {
	t.expireLocked()
	if _, ok := t.removed[addr]; ok {
		return
	}
	var failed int64
	if p, ok := t.peers[addr]; ok {
		failed = p.lastFailed.Load()
	}
	if len(t.removed) == 0 {
		t.removedUntil = t.now().Add(removedListed)
	}
	t.removed[addr] = failed
}

// removedList returns the removed directors still listed, and their last failed contact.
func (t *peerTable) removedList() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked()
	out := make(map[string]int64, len(t.removed))
	for a, f := range t.removed {
		out[a] = f
	}
	return out
}

// expireLocked forgets the removed directors once the batch's time is up.
func (t *peerTable) expireLocked() {
	if len(t.removed) > 0 && !t.now().Before(t.removedUntil) {
		clear(t.removed)
	}
}

// unremove is for a director added again.
func (t *peerTable) unremove(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.removed, addr)
}

// buffered returns the bytes written to p's live connections (all connections for the
// total) that the peer has not received yet, and records the peak.
func (t *peerTable) buffered(p *peerStats) (now, peak int64) {
	t.mu.Lock()
	var conns []*countingConn
	if p == &t.total {
		for _, q := range t.peers {
			for c := range q.conns {
				conns = append(conns, c)
			}
		}
	} else {
		for c := range p.conns {
			conns = append(conns, c)
		}
	}
	t.mu.Unlock()
	for _, c := range conns {
		now += sendQueue(c.Conn)
	}
	peak = max(p.bufPeak.Load(), now)
	p.bufPeak.Store(peak)
	return now, peak
}

func (t *peerTable) failed(addr string) {
	now := t.now().Unix()
	t.get(addr).lastFailed.Store(now)
	t.total.lastFailed.Store(now)
}

// count wraps c so its bytes are counted for addr, and its send queue too while it is open.
func (t *peerTable) count(addr string, c net.Conn) net.Conn {
	cc := &countingConn{Conn: c, addr: addr, p: t.get(addr), total: &t.total, now: t.now, t: t}
	t.mu.Lock()
	if cc.p.conns == nil {
		cc.p.conns = map[*countingConn]struct{}{}
	}
	cc.p.conns[cc] = struct{}{}
	t.mu.Unlock()
	return cc
}

type countingConn struct {
	net.Conn
	addr     string // the peer's ring address, as it proved in the handshake
	p, total *peerStats
	now      func() time.Time
	t        *peerTable
}

func (c *countingConn) Close() error {
	c.t.mu.Lock()
	delete(c.p.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		ts := c.now().Unix()
		for _, p := range []*peerStats{c.p, c.total} {
			p.in.Add(int64(n))
			p.lastRead.Store(ts)
		}
	}
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		ts := c.now().Unix()
		for _, p := range []*peerStats{c.p, c.total} {
			p.out.Add(int64(n))
			p.lastWrite.Store(ts)
		}
	}
	return n, err
}
