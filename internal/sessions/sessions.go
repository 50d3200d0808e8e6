// Package sessions is the registry of the sessions usher proxies: who is
// connected, from where, to which backend, and how to cut them off. It backs
// `who`, `kick`, proxyList/proxyKick, the director's kicks on move/flush and
// the per-user+IP connection limit.
package sessions

import (
	"cmp"
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Session describes one proxied connection. BytesIn (client to backend) and
// BytesOut (backend to client) are filled in by List.
type Session struct {
	ID, Service, User string
	Client, Local     netip.AddrPort
	Backend           netip.AddrPort
	Start             time.Time
	Hash              uint32 // the director's user hash, for KickHash
	Tag               string // the director_tag ring Hash is mapped in

	BytesIn, BytesOut int64
}

// Counters are a session's live byte counts, for a relay that wants `who`
// and proxyList to see traffic before the session ends.
type Counters struct{ in, out atomic.Int64 }

// AddIn counts n bytes from the client to the backend.
func (c *Counters) AddIn(n int64) { c.in.Add(n) }

// AddOut counts n bytes from the backend to the client.
func (c *Counters) AddOut(n int64) { c.out.Add(n) }

type entry struct {
	seq    uint64 // registration order, the order List reports
	idx    int    // position in the shard's slice, under the shard's lock
	s      Session
	kick   func(reason string)
	kicked atomic.Bool
	gone   atomic.Bool
	bytes  Counters
}

// Shards keep logins of different users from contending on one lock. A
// user's sessions all live in one shard, so per-user lookups touch one lock.
const numShards = 64

// A shard keeps its entries in a slice for cheap full scans (List, kicks by
// hash) and indexes them by user for the per-login lookups.
type shard struct {
	mu     sync.Mutex
	all    []*entry
	byUser map[string][]*entry
}

func (sh *shard) add(e *entry) {
	e.idx = len(sh.all)
	sh.all = append(sh.all, e)
	sh.byUser[e.s.User] = append(sh.byUser[e.s.User], e)
}

func (sh *shard) remove(e *entry) {
	last := sh.all[len(sh.all)-1]
	sh.all[e.idx], last.idx = last, e.idx
	sh.all[len(sh.all)-1] = nil
	sh.all = sh.all[:len(sh.all)-1]

	us := sh.byUser[e.s.User]
	for i, x := range us {
		if x == e {
			us[i] = us[len(us)-1]
			us[len(us)-1] = nil
			us = us[:len(us)-1]
			break
		}
	}
	if len(us) == 0 {
		delete(sh.byUser, e.s.User)
	} else {
		sh.byUser[e.s.User] = us
	}
}

// Registry is safe for concurrent use.
type Registry struct {
	seed   maphash.Seed
	seq    atomic.Uint64
	count  atomic.Int64
	shards [numShards]shard
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].byUser = make(map[string][]*entry)
	}
	return r
}

func (r *Registry) shardOf(user string) *shard {
	return &r.shards[maphash.String(r.seed, user)%numShards]
}

// Add registers s. kick must close the session (it is called at most once,
// never under the registry's locks). The caller calls done exactly once when
// the session has ended, with the bytes relayed each way; later calls are
// ignored.
func (r *Registry) Add(s Session, kick func(reason string)) (done func(in, out int64)) {
	_, done = r.AddLive(s, kick)
	return done
}

// AddLive is Add for relays that count bytes as they go: the returned
// counters show in List immediately. done still takes the final totals; the
// larger of live and final counts wins.
func (r *Registry) AddLive(s Session, kick func(reason string)) (c *Counters, done func(in, out int64)) {
	s.BytesIn, s.BytesOut = 0, 0
	e := &entry{seq: r.seq.Add(1), s: s, kick: kick}
	sh := r.shardOf(s.User)
	sh.mu.Lock()
	sh.add(e)
	sh.mu.Unlock()
	r.count.Add(1)

	return &e.bytes, func(in, out int64) {
		if e.gone.Swap(true) {
			return
		}
		storeMax(&e.bytes.in, in)
		storeMax(&e.bytes.out, out)
		sh.mu.Lock()
		sh.remove(e)
		sh.mu.Unlock()
		r.count.Add(-1)
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func (e *entry) snapshot() Session {
	s := e.s
	s.BytesIn, s.BytesOut = e.bytes.in.Load(), e.bytes.out.Load()
	return s
}

// Len is the number of live sessions.
func (r *Registry) Len() int { return int(r.count.Load()) }

// each calls f for every entry, one shard locked at a time.
func (r *Registry) each(f func(*entry)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for _, e := range sh.all {
			f(e)
		}
		sh.mu.Unlock()
	}
}

func (r *Registry) collect(match func(*entry) bool) []*entry {
	var es []*entry
	r.each(func(e *entry) {
		if match(e) {
			es = append(es, e)
		}
	})
	slices.SortFunc(es, func(a, b *entry) int { return cmpUint(a.seq, b.seq) })
	return es
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// List returns every live session in registration order.
func (r *Registry) List() []Session {
	es := r.collect(func(*entry) bool { return true })
	out := make([]Session, len(es))
	for i, e := range es {
		out[i] = e.snapshot()
	}
	return out
}

// CountUserIP counts the user's sessions from ip, for
// mail_max_userip_connections.
func (r *Registry) CountUserIP(user string, ip netip.Addr) int {
	ip = ip.Unmap()
	sh := r.shardOf(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := 0
	for _, e := range sh.byUser[user] {
		if e.s.Client.Addr().Unmap() == ip {
			n++
		}
	}
	return n
}

// Kick closes every session match accepts and returns them in registration
// order. A session already kicked but not yet gone is reported again, its
// kick function is not called twice. match runs outside the registry's
// locks, so it may call back into the registry.
func (r *Registry) Kick(match func(Session) bool, reason string) []Session {
	all := r.collect(func(*entry) bool { return true })
	es := all[:0]
	for _, e := range all {
		if match(e.snapshot()) {
			es = append(es, e)
		}
	}
	return r.kickAll(es, reason)
}

func (r *Registry) kickAll(es []*entry, reason string) []Session {
	out := make([]Session, len(es))
	for i, e := range es {
		out[i] = e.snapshot()
		if !e.kicked.Swap(true) && e.kick != nil {
			e.kick(reason)
		}
	}
	return out
}

// KickUser closes all sessions of user and returns how many there were.
func (r *Registry) KickUser(user, reason string) int {
	sh := r.shardOf(user)
	sh.mu.Lock()
	es := slices.Clone(sh.byUser[user])
	sh.mu.Unlock()
	return len(r.kickAll(es, reason))
}

// KickHash closes all sessions whose user hash is hash (the director's kick
// of every user on a moved or flushed hash).
func (r *Registry) KickHash(hash uint32, reason string) int {
	es := r.collect(func(e *entry) bool { return e.s.Hash == hash })
	return len(r.kickAll(es, reason))
}

// Mapping is a director mapping: a user hash in a director_tag's ring ("" the untagged one).
type Mapping struct {
	Tag  string
	Hash uint32
}

// Mappings lists the distinct director mappings with live sessions, by tag and hash.
func (r *Registry) Mappings() []Mapping {
	seen := make(map[Mapping]struct{})
	r.each(func(e *entry) { seen[Mapping{e.s.Tag, e.s.Hash}] = struct{}{} })
	out := make([]Mapping, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		if c := strings.Compare(a.Tag, b.Tag); c != 0 {
			return c
		}
		return cmp.Compare(a.Hash, b.Hash)
	})
	return out
}
