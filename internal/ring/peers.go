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
	behindPeak  atomic.Uint64
	lastPingAns atomic.Int64
}

// peerTable keys stats by ring address. The whole ring is also counted in
// total, for the row of the director itself.
type peerTable struct {
	now   func() time.Time
	mu    sync.Mutex
	peers map[string]*peerStats
	total peerStats
}

func newPeerTable(now func() time.Time) *peerTable {
	return &peerTable{now: now, peers: map[string]*peerStats{}}
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

// forget drops a removed peer's stats.
func (t *peerTable) forget(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a := range t.peers {
		if !keep[a] {
			delete(t.peers, a)
		}
	}
}

func (t *peerTable) failed(addr string) {
	now := t.now().Unix()
	t.get(addr).lastFailed.Store(now)
	t.total.lastFailed.Store(now)
}

// count wraps c so its bytes are counted for addr.
func (t *peerTable) count(addr string, c net.Conn) net.Conn {
	return &countingConn{Conn: c, p: t.get(addr), total: &t.total, now: t.now}
}

type countingConn struct {
	net.Conn
	p, total *peerStats
	now      func() time.Time
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
