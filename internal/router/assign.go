package router

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// A new user is routed from this director's own vhost ring and logs in at
// once; the choice is recorded in the replicated log afterwards, in groups
// (cluster.OpUserRecord). Until its record commits the choice is a
// provisional entry here, so the user's further logins on this director go
// to the same backend. Directors with the same host table choose the same
// backend, so the log almost always confirms the choice; when it does not
// (another director, with another host table, recorded the user first) this
// director lost: it kicks its sessions of the user, as a move does, and
// counts a conflict.

const (
	// maxProvisional bounds the provisional entries, which pile up while
	// the ring has no quorum. Past it a new user is still routed but not
	// recorded (counted in Unrecorded).
	maxProvisional = 100_000
	// maxBatch bounds the records of one log entry (about 20 bytes each).
	maxBatch = 4096
	// provisionalMaxAge: a provisional entry whose logins never reported
	// back (Confirm) is forgotten after this long.
	provisionalMaxAge = 5 * time.Minute
	// readSyncTimeout bounds how long a read (USER-LIST, USER-LOOKUP,
	// HOST-LIST) waits for this director's logins to be recorded.
	readSyncTimeout = 2 * time.Second
	// groupCommitDelay is how long a confirmed assignment waits for others
	// to share its log entry (and fsync); readers do not wait for it.
	groupCommitDelay = 25 * time.Millisecond
	// backgroundFlushTimeout bounds one group commit in the background;
	// without a leader it fails and the records wait for the next try.
	backgroundFlushTimeout = 5 * time.Second
	conflictReason         = "Kicked via director (user assigned elsewhere)"
)

// provisional is a new user's backend as this director chose it, not yet
// confirmed by the log. host and gen do not change; the rest is guarded by
// Router.mu.
type provisional struct {
	user     string // login name, for the log
	host     netip.Addr
	gen      uint64    // host generation host was computed on
	at       time.Time // first routed
	ts       int64     // latest login routed with it (unix s)...
	seq      uint64    // ...and its place among logins
	inflight int       // logins routed with it that have not reported back
	// confirmed: a login on host succeeded, so the choice is recorded.
	confirmed bool
	// lost: the log mapped the user elsewhere and its sessions here were
	// kicked; kept while logins routed with it are in flight, so that one
	// that succeeds late is kicked too.
	lost bool
}

// pending is a login waiting for the next group commit: a refresh of a
// mapped user, and for a new user also its assignment (p).
type pending struct {
	ts  int64
	seq uint64
	p   *provisional
}

// assignments is the Router's part for new users. Maps and seq are guarded
// by Router.mu.
type assignments struct {
	prov  map[key]*provisional
	provN atomic.Int64 // len(prov), read without the lock
	pend  map[key]pending
	seq   uint64 // orders logins within a second, as USER-LIST does

	wake     chan struct{} // a confirmed assignment waits for the log
	flushing chan struct{} // holds one token per running group commit (one at most)

	conflicts, unrecorded atomic.Uint64
	lastFull, lastFail    time.Time // rate limits of log lines
}

func (a *assignments) init() {
	a.prov = map[key]*provisional{}
	a.pend = map[key]pending{}
	a.wake = make(chan struct{}, 1)
	a.flushing = make(chan struct{}, 1)
}

// Conflicts counts this director's provisional assignments that the log
// decided otherwise (usher_director_assignment_conflicts_total).
func (r *Router) Conflicts() uint64 { return r.conflicts.Load() }

// Unrecorded counts new users routed but not recorded because too many
// assignments were waiting for the ring.
func (r *Router) Unrecorded() uint64 { return r.unrecorded.Load() }

// Provisional is the number of assignments of this director not yet in the log.
func (r *Router) Provisional() int { return int(r.provN.Load()) }

// touch notes a login of k at ts for the next group commit. r.mu is held.
func (r *Router) touch(k key, ts int64) {
	r.seq++
	e := r.pend[k]
	if ts >= e.ts {
		e.ts, e.seq = ts, r.seq
	}
	r.pend[k] = e
}

// reuse routes one more login of k with p. r.mu is held.
func (r *Router) reuse(k key, p *provisional, ts int64) {
	p.inflight++
	r.touch(k, ts)
	p.ts, p.seq = ts, r.seq
}

func (r *Router) dropProv(k key) {
	delete(r.prov, k)
	r.provN.Store(int64(len(r.prov)))
}

// provisionalLocked routes a new user to host, reusing the entry of a
// login that got here first. r.mu is held.
func (r *Router) provisionalLocked(k key, user string, host netip.Addr, gen uint64, now time.Time) netip.Addr {
	if p := r.prov[k]; p != nil && !p.lost {
		r.reuse(k, p, now.Unix())
		return p.host
	}
	if len(r.prov) >= maxProvisional {
		r.unrecorded.Add(1)
		if now.Sub(r.lastFull) >= time.Minute {
			r.lastFull = now
			r.log.Warn("too many assignments waiting for the ring: new users are routed but not recorded",
				"waiting", len(r.prov), "unrecorded_total", r.unrecorded.Load())
		}
		return host
	}
	r.touch(k, now.Unix())
	r.prov[k] = &provisional{user: user, host: host, gen: gen, at: now, ts: now.Unix(), seq: r.seq, inflight: 1}
	r.provN.Store(int64(len(r.prov)))
	return host
}

// Confirm reports how the login that Route sent to backend ended. The
// assignment of a new user is recorded only once a login on its backend
// succeeded; a refused login leaves no mapping behind. It costs nothing for
// a user that was already mapped, unless new users are being assigned here.
func (r *Router) Confirm(user string, backend netip.Addr, accepted bool) {
	r.ConfirmTag(user, "", backend, accepted)
}

// ConfirmTag is Confirm for a director_tag.
func (r *Router) ConfirmTag(user, tag string, backend netip.Addr, accepted bool) {
	if r.provN.Load() == 0 {
		return
	}
	h, err := r.Hash(user)
	if err != nil {
		return
	}
	k := key{tag, h}
	r.mu.Lock()
	p := r.prov[k]
	if p == nil || p.host != backend {
		r.mu.Unlock()
		return
	}
	if p.inflight > 0 {
		p.inflight--
	}
	kick, wake := false, false
	switch {
	case p.lost:
		kick = accepted // a late session on the losing backend
	case accepted && !p.confirmed:
		p.confirmed, wake = true, true
		e := r.pend[k]
		if p.ts > e.ts || p.ts == e.ts && p.seq > e.seq {
			e.ts, e.seq = p.ts, p.seq
		}
		e.p = p
		r.pend[k] = e
	}
	if p.inflight == 0 && (p.lost || !p.confirmed) {
		r.dropProv(k)
	}
	r.mu.Unlock()
	if wake {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	if kick && r.kicker != nil {
		r.hold(k)
		r.kicker.KickHash(k.hash, conflictReason)
	}
}

// loseLocked marks p as lost to another assignment. r.mu is held.
func (r *Router) loseLocked(k key, p *provisional) {
	p.lost = true
	r.conflicts.Add(1)
	if p.inflight == 0 {
		r.dropProv(k)
	}
}

// kickLoser closes this director's sessions of a user whose assignment lost,
// and holds its logins for the kick delay, as a move does.
func (r *Router) kickLoser(k key, p *provisional, winner netip.Addr) {
	var gen uint64
	r.node.Read(func(s cluster.View) { gen = s.HostGen() })
	r.log.Warn("assignment conflict: the user was recorded on another backend first; kicking its sessions here",
		"user", p.user, "tag", k.tag, "hash", k.hash, "routed", p.host.String(), "routed_generation", p.gen,
		"recorded", winner.String(), "generation", gen, "provisional_for", r.now().Sub(p.at).Round(time.Millisecond).String())
	if r.hold(k) && r.kicker != nil {
		r.kicker.KickHash(k.hash, conflictReason)
	}
}

type pendItem struct {
	k key
	pending
}

// flush commits every pending login, in login order, many per log entry,
// and settles the assignments among them. Only one flush runs at a time;
// logins arriving meanwhile go into the next one (group commit). On failure
// the logins stay pending.
func (r *Router) flush(ctx context.Context) error {
	select {
	case r.flushing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.flushing }()
	r.mu.Lock()
	if len(r.pend) == 0 {
		r.mu.Unlock()
		return nil
	}
	items := make([]pendItem, 0, len(r.pend))
	for k, e := range r.pend {
		items = append(items, pendItem{k, e})
	}
	r.pend = make(map[key]pending, len(items))
	r.mu.Unlock()
	// The FSM keeps users in timestamp order, ties in the order applied:
	// logins in their order give USER-LIST Dovecot's order.
	slices.SortFunc(items, func(a, b pendItem) int {
		return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.seq, b.seq))
	})
	exp := r.expireSecs()
	for len(items) > 0 {
		chunk := items[:min(len(items), maxBatch)]
		recs := make([]cluster.Record, len(chunk))
		for i, it := range chunk {
			recs[i] = cluster.Record{Tag: it.k.tag, Hash: it.k.hash, TS: it.ts}
			if it.p != nil {
				recs[i].IP, recs[i].Gen = it.p.host, it.p.gen
			}
		}
		res, err := r.node.Apply(ctx, cluster.Command{Op: cluster.OpUserRecord, Records: recs, Expire: exp})
		if err != nil {
			// Not applied, or not known to be: submitting again is safe,
			// an assignment that won finds itself.
			r.requeue(items)
			return err
		}
		r.settle(chunk, res.Hosts)
		items = items[len(chunk):]
	}
	return nil
}

func (r *Router) requeue(items []pendItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		e, ok := r.pend[it.k]
		if !ok || it.ts > e.ts || it.ts == e.ts && it.seq > e.seq {
			e.ts, e.seq = it.ts, it.seq
		}
		if e.p == nil {
			e.p = it.p
		}
		r.pend[it.k] = e
	}
}

// settle compares each committed assignment with the provisional entry it
// came from: equal, the entry is no longer needed; different, this
// director lost the user.
func (r *Router) settle(chunk []pendItem, hosts []netip.Addr) {
	for i, it := range chunk {
		p := it.p
		if p == nil {
			continue
		}
		var winner netip.Addr
		if i < len(hosts) {
			winner = hosts[i]
		}
		r.mu.Lock()
		if r.prov[it.k] != p || p.lost {
			r.mu.Unlock()
			continue
		}
		if winner == p.host {
			r.dropProv(it.k)
			r.mu.Unlock()
			continue
		}
		r.loseLocked(it.k, p)
		r.mu.Unlock()
		r.kickLoser(it.k, p, winner)
	}
}

// flushBackground is a group commit of the background loop.
func (r *Router) flushBackground() {
	ctx, cancel := context.WithTimeout(context.Background(), backgroundFlushTimeout)
	defer cancel()
	if err := r.flush(ctx); err != nil {
		r.mu.Lock()
		n, now := len(r.pend), r.now()
		logIt := now.Sub(r.lastFail) >= 30*time.Second
		if logIt {
			r.lastFail = now
		}
		r.mu.Unlock()
		if logIt {
			r.log.Warn("recording logins in the ring failed; they wait for the next try", "waiting", n, "err", err)
		}
	}
}

// syncReads records this director's pending logins before a read, so a
// user shows up right after its login here. It gives up quickly when the
// ring has no leader; reads then add the provisional entries (see Users).
func (r *Router) syncReads() {
	if addr, _ := r.node.Leader(); addr == "" {
		return
	}
	// Even with nothing pending, a group commit may be under way: flush
	// waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), readSyncTimeout)
	defer cancel()
	r.flush(ctx)
}

// forgetStale drops provisional entries whose logins never reported back.
func (r *Router) forgetStale() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.prov {
		if (!p.confirmed || p.lost) && now.Sub(p.at) > provisionalMaxAge {
			r.dropProv(k)
		}
	}
}

// forgetProvisional drops k's provisional entry (an admin decides the user's
// backend now).
func (r *Router) forgetProvisional(k key) {
	r.mu.Lock()
	if r.prov[k] != nil {
		r.dropProv(k)
	}
	r.mu.Unlock()
}

// provisionalUsers lists the confirmed provisional entries not yet in the
// log (of host ip if set), oldest first, as USER-LIST rows.
func (r *Router) provisionalUsers(ip *netip.Addr, listed map[key]bool) []UserEntry {
	exp := r.expireSecs()
	type row struct {
		UserEntry
		seq uint64
	}
	var rows []row
	r.mu.Lock()
	for k, p := range r.prov {
		if p.confirmed && !p.lost && (ip == nil || *ip == p.host) {
			rows = append(rows, row{UserEntry{Tag: k.tag, Hash: k.hash, Expire: p.ts + exp, Host: p.host}, p.seq})
		}
	}
	r.mu.Unlock()
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(a.Expire, b.Expire), cmp.Compare(a.seq, b.seq)) })
	out := make([]UserEntry, 0, len(rows))
	for _, x := range rows {
		if !listed[key{x.Tag, x.Hash}] {
			out = append(out, x.UserEntry)
		}
	}
	return out
}

// mergeUsers puts extra rows (oldest first) into USER-LIST rows: each after
// the rows of its tag that do not expire later, as the log would have
// placed it; rows of a tag not listed yet go at the end.
func mergeUsers(rows, extra []UserEntry) []UserEntry {
	if len(extra) == 0 {
		return rows
	}
	byTag := map[string][]UserEntry{}
	var tags []string
	for _, e := range extra {
		if _, ok := byTag[e.Tag]; !ok {
			tags = append(tags, e.Tag)
		}
		byTag[e.Tag] = append(byTag[e.Tag], e)
	}
	out := make([]UserEntry, 0, len(rows)+len(extra))
	for i, row := range rows {
		q := byTag[row.Tag]
		for len(q) > 0 && q[0].Expire < row.Expire {
			out, q = append(out, q[0]), q[1:]
		}
		out = append(out, row)
		if i+1 == len(rows) || rows[i+1].Tag != row.Tag {
			out, q = append(out, q...), nil
		}
		byTag[row.Tag] = q
	}
	for _, t := range tags {
		out = append(out, byTag[t]...)
	}
	return out
}
