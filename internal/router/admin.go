package router

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
)

// Replies of the director-admin protocol that are not plain NOTFOUND.
var (
	ErrVhostTooLarge = errors.New("vhost count too large")
	ErrTagChange     = errors.New("host tag can't be changed")
)

// HostStatus is one row of HOST-LIST.
type HostStatus struct {
	cluster.Host
	Users int
}

// UserEntry is one row of USER-LIST.
type UserEntry struct {
	Tag    string
	Hash   uint32
	Expire int64 // unix seconds
	Host   netip.Addr
}

// Lookup is the answer to USER-LOOKUP. Current is invalid when the user has
// no live mapping; Hashed and Initial are invalid when the ring is empty.
type Lookup struct {
	Current netip.Addr
	Expire  int64
	Hashed  netip.Addr
	Initial netip.Addr
}

// apply commits an admin write. This director's logins before it are
// recorded first, so that a host change or flush comes after them in the
// log, as it came after them here (a login recorded after a HOST-FLUSH of
// its backend would map the user to that backend again).
func (r *Router) apply(ctx context.Context, c cluster.Command) (cluster.Result, error) {
	r.syncReads()
	res, err := r.node.Apply(ctx, c)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrTempFail, err)
	}
	switch res.Code {
	case cluster.OK:
		return res, nil
	case cluster.NotFound:
		return res, ErrNotFound
	case cluster.TagChange:
		return res, ErrTagChange
	case cluster.VhostTooLarge:
		return res, ErrVhostTooLarge
	}
	return res, fmt.Errorf("unexpected result %v", res.Code)
}

// Hosts lists backends sorted as Dovecot sorts them, with live user counts
// (of the mappings in the log: without a quorum, this director's new users
// are not counted yet).
func (r *Router) Hosts() []HostStatus {
	r.syncReads()
	now := r.now().Unix()
	var out []HostStatus
	r.node.Read(func(s cluster.View) {
		for _, h := range s.Hosts() {
			out = append(out, HostStatus{Host: h, Users: s.UserCount(h.IP, now, r.expireSecs())})
		}
	})
	return out
}

// RemovedHosts lists configured backends that an admin removed.
func (r *Router) RemovedHosts() []netip.Addr {
	var out []netip.Addr
	r.node.Read(func(s cluster.View) { out = s.RemovedHosts() })
	return out
}

// SetHost adds a backend or changes its vhost count (vhosts < 0: keep or
// default). update=true refuses unknown hosts (HOST-UPDATE).
func (r *Router) SetHost(ctx context.Context, ip netip.Addr, tag string, vhosts int, update bool) error {
	op := cluster.OpHostSet
	if update {
		op = cluster.OpHostUpdate
	}
	_, err := r.apply(ctx, cluster.Command{Op: op, IP: ip, Tag: tag, VhostCount: vhosts, Now: r.now().Unix()})
	return err
}

// SetDown marks a backend down (no new users) or up again.
func (r *Router) SetDown(ctx context.Context, ip netip.Addr, down bool) error {
	op := cluster.OpHostUp
	if down {
		op = cluster.OpHostDown
	}
	_, err := r.apply(ctx, cluster.Command{Op: op, IP: ip, Now: r.now().Unix()})
	return err
}

// RemoveHost drops a backend and its users' mappings (no kick).
func (r *Router) RemoveHost(ctx context.Context, ip netip.Addr) error {
	_, err := r.apply(ctx, cluster.Command{Op: cluster.OpHostRemove, IP: ip, Now: r.now().Unix()})
	return err
}

// FlushHost drops the mappings of one backend, or of all when ip is nil,
// without kicking anybody (HOST-FLUSH).
func (r *Router) FlushHost(ctx context.Context, ip *netip.Addr) error {
	c := cluster.Command{Op: cluster.OpHostFlush, All: ip == nil, Now: r.now().Unix()}
	if ip != nil {
		c.IP = *ip
	}
	_, err := r.apply(ctx, c)
	return err
}

// LookupUser answers USER-LOOKUP for a user name or a numeric hash.
func (r *Router) LookupUser(userOrHash, tag string) (Lookup, error) {
	h, err := r.hashArg(userOrHash)
	if err != nil {
		return Lookup{}, err
	}
	r.syncReads()
	var l Lookup
	now := r.now().Unix()
	exp := r.expireSecs()
	r.node.Read(func(s cluster.View) {
		if u, ok := s.User(tag, h); ok && u.Timestamp+exp > now {
			l.Current, l.Expire = u.Host, u.Timestamp+exp
		}
	})
	if !l.Current.IsValid() {
		r.mu.Lock()
		if p := r.prov[key{tag, h}]; p != nil && p.confirmed && !p.lost {
			l.Current, l.Expire = p.host, p.ts+exp
		}
		r.mu.Unlock()
	}
	rings, _ := r.currentRings()
	l.Hashed, _ = rings.Lookup(tag, h)
	r.mu.Lock()
	initial := r.initial
	r.mu.Unlock()
	l.Initial, _ = initial.Lookup(tag, h)
	return l, nil
}

// Users lists live mappings, optionally of one backend, in USER-LIST order.
// This director's logins are recorded first, so a user shows up right after
// logging in here. Without a quorum they cannot be: its new users are then
// listed from its provisional entries, placed by timestamp.
func (r *Router) Users(ip *netip.Addr) []UserEntry {
	r.syncReads()
	now := r.now().Unix()
	exp := r.expireSecs()
	var out []UserEntry
	r.node.Read(func(s cluster.View) {
		for _, u := range s.Users(ip) {
			if u.Timestamp+exp > now {
				out = append(out, UserEntry{Tag: u.Tag, Hash: u.Hash, Expire: u.Timestamp + exp, Host: u.Host})
			}
		}
	})
	if r.provN.Load() == 0 {
		return out
	}
	listed := make(map[key]bool, len(out))
	for _, u := range out {
		listed[key{u.Tag, u.Hash}] = true
	}
	return mergeUsers(out, r.provisionalUsers(ip, listed))
}

// Move sends a user (name or hash) to ip and kicks its sessions elsewhere.
// It answers at once; new logins of the user wait until the kick delay has
// passed, so the old and the new backend never serve the user together.
func (r *Router) Move(ctx context.Context, userOrHash string, ip netip.Addr) error {
	h, err := r.hashArg(userOrHash)
	if err != nil {
		return err
	}
	if _, numeric := director.ParseHashArg(userOrHash); !numeric {
		r.remember(userOrHash)
	}
	k := key{"", h}
	r.syncReads()
	// Dovecot looks the host up before anything else: an unknown host is NOTFOUND even
	// while the user is still being moved.
	var hostKnown bool
	r.node.Read(func(s cluster.View) { _, hostKnown = s.Host(ip) })
	if !hostKnown {
		return ErrNotFound
	}
	var old cluster.User
	var existed bool
	now := r.now().Unix()
	exp := r.expireSecs()
	r.node.Read(func(s cluster.View) {
		old, existed = s.User(k.tag, h)
		existed = existed && old.Timestamp+exp > now
	})
	// Checking and marking are one step under r.mu: of two moves at once,
	// exactly one marks the user and the other gets TRYAGAIN.
	kick := existed && old.Host != ip
	r.mu.Lock()
	_, busy := r.moving[k]
	if !busy && kick {
		r.markLocked(k)
	}
	r.mu.Unlock()
	if busy {
		return ErrTryAgain
	}
	// The kick goes into the log before the move: every director then holds
	// the user's logins while the new mapping arrives, so no director sends
	// the user to the new backend while a session on the old one is open.
	if kick {
		if err := r.kickMarked(ctx, k, movedReason, true); err != nil {
			return err
		}
	}
	r.forgetProvisional(k)
	_, err = r.apply(ctx, cluster.Command{Op: cluster.OpUserMove, Tag: k.tag, Hash: h, IP: ip, Now: now})
	return err
}

// kill marks the user as being moved and closes its sessions here at once,
// then commits a kick so that every other director does the same when it
// applies it (OnKick).
func (r *Router) kill(ctx context.Context, k key, reason string) error {
	return r.kickMarked(ctx, k, reason, r.mark(k))
}

// movedReason is what the sessions of a moved user are told.
const movedReason = "Kicked via director (user moved)"

// kickMarked closes the user's sessions here if this call marked it, and
// commits the kick. The mark it set is released only a kick delay after
// the commit, by which time this director has applied its own kick: the
// mark makes OnKick leave alone the sessions closed here already, however
// long the commit took.
func (r *Router) kickMarked(ctx context.Context, k key, reason string, marked bool) error {
	if marked {
		if r.kicker != nil {
			r.kicker.KickHash(k.hash, reason)
		}
		defer r.releaseAfterDelay(k)
	}
	if err := r.node.Kick(ctx, cluster.Kick{Tag: k.tag, Hash: k.hash, Reason: reason}, r.now().Unix()); err != nil {
		return fmt.Errorf("%w: %v", ErrTempFail, err)
	}
	return nil
}

// hold marks k as moving for the kick delay. It returns false when k is
// marked already: logins of a moving user wait, so no session of it was
// opened here since the kick that set the mark, and there is nothing more
// to close.
func (r *Router) hold(k key) bool {
	if !r.mark(k) {
		return false
	}
	r.releaseAfterDelay(k)
	return true
}

// mark marks k as moving unless it is marked already, and says whether it
// did; releaseAfterDelay ends the mark.
func (r *Router) mark(k key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.moving[k]; busy {
		return false
	}
	r.markLocked(k)
	return true
}

// markLocked is mark with r.mu held, for a k not marked.
func (r *Router) markLocked(k key) { r.moving[k] = r.now() }

// releaseAfterDelay ends k's mark once the kick delay has passed.
func (r *Router) releaseAfterDelay(k key) {
	time.AfterFunc(r.config().KickDelay, func() {
		r.mu.Lock()
		delete(r.moving, k)
		r.mu.Unlock()
	})
}

// OnKick does a committed kick's local part on this director. It runs on
// raft's apply goroutine, so it only marks and hands the closing of
// sessions to another goroutine.
func (r *Router) OnKick(k cluster.Kick) {
	if k.User != "" {
		if r.kicker != nil {
			go r.kicker.KickUser(k.User, k.Reason)
		}
		return
	}
	// The user is being moved: a choice of this director not yet in the log
	// is moot, and must not count as a conflict when the move commits.
	r.forgetProvisional(key{k.Tag, k.Hash})
	if r.hold(key{k.Tag, k.Hash}) && r.kicker != nil {
		go r.kicker.KickHash(k.Hash, k.Reason)
	}
}

// Kick closes every proxied session of a login name on every director. The
// sessions here are closed before the kick is committed, so the caller's
// own director has acted when the answer comes.
func (r *Router) Kick(ctx context.Context, user string) error {
	if r.kicker != nil {
		r.kicker.KickUser(user, "Kicked by admin")
	}
	if err := r.node.Kick(ctx, cluster.Kick{User: user, Reason: "Kicked by admin"}, r.now().Unix()); err != nil {
		return fmt.Errorf("%w: %v", ErrTempFail, err)
	}
	return nil
}

// ResetUsers moves the users of one backend (nil: all) whose ring choice
// changed to the ring's host, at most maxParallel at a time, and returns
// when all are done (HOST-RESET-USERS).
func (r *Router) ResetUsers(ctx context.Context, ip *netip.Addr, maxParallel int) error {
	if ip != nil {
		found := false
		r.node.Read(func(s cluster.View) { _, found = s.Host(*ip) })
		if !found {
			return ErrNotFound
		}
	}
	if maxParallel <= 0 {
		maxParallel = r.config().MaxParallelMoves
	}
	rings, _ := r.currentRings()
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for _, u := range r.Users(ip) {
		want, ok := rings.Lookup(u.Tag, u.Hash)
		if ok && want == u.Host {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(u UserEntry) {
			defer func() { <-sem; wg.Done() }()
			if err := r.reset(ctx, u, want, ok); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}(u)
	}
	wg.Wait()
	return firstErr
}

func (r *Router) reset(ctx context.Context, u UserEntry, want netip.Addr, ok bool) error {
	k := key{u.Tag, u.Hash}
	var c cluster.Command
	if ok {
		c = cluster.Command{Op: cluster.OpUserMove, Tag: u.Tag, Hash: u.Hash, IP: want, Now: r.now().Unix()}
	} else {
		c = cluster.Command{Op: cluster.OpUserDrop, Tag: u.Tag, Hash: u.Hash, Now: r.now().Unix()}
	}
	// Kick before the move, for the reason given in Move.
	if err := r.kill(ctx, k, "Kicked via director (host flushed)"); err != nil {
		return err
	}
	r.forgetProvisional(k)
	if _, err := r.apply(ctx, c); err != nil {
		return err
	}
	// Like Dovecot, a flush answers only once every move has finished.
	select {
	case <-time.After(r.config().KickDelay):
	case <-ctx.Done():
	}
	return nil
}
