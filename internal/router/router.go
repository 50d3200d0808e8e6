// Package router is the director service: it decides which backend a user
// goes to at login, keeps that choice sticky, and carries out the admin
// operations (move, kick, flush) with the kicks they imply. Every front-end
// and the admin API use it; none of them touches the replicated state
// directly.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
)

// Errors callers map to protocol answers.
var (
	// ErrTempFail: the director cannot decide now (no host, state
	// unavailable, timed out in the queue). IMAP answers
	// "NO [UNAVAILABLE] Temporary authentication failure."
	ErrTempFail = errors.New("temporary director failure")
	ErrNotFound = errors.New("host doesn't exist")
	ErrTryAgain = errors.New("user is already being moved")
)

// Kicker closes proxied sessions. The sessions registry implements it.
type Kicker interface {
	KickHash(hash uint32, reason string) int
	KickUser(user, reason string) int
	// Live lists the mappings (tag, user hash) that have open sessions.
	Live() []LiveKey
}

// LiveKey is a director mapping with open sessions: a user hash in a director_tag's ring.
type LiveKey struct {
	Tag  string
	Hash uint32
}

// Config is the part of the settings the router needs. It can be swapped on
// reload with SetConfig.
type Config struct {
	HashTemplate     string
	Expire           time.Duration
	KickDelay        time.Duration
	MaxParallelMoves int
	QueueTimeout     time.Duration // how long a new user waits for a host (Dovecot: 30 s)
	InitialHosts     []director.Host
}

// Router is safe for concurrent use.
type Router struct {
	node   *cluster.Node
	kicker Kicker
	log    *slog.Logger
	now    func() time.Time

	cfg atomic.Pointer[Config] // read on every login: no lock

	mu        sync.Mutex
	rings     *director.Rings
	ringGen   uint64 // host generation rings was built for
	initial   *director.Rings
	moving    map[key]time.Time   // users being killed: new logins wait
	names     map[string]struct{} // login names seen, for `director map`
	nameBytes int                 // the bytes of names
	jobs      jobTable            // drains, rebalances, evacuations (drain.go)
	assignments

	stop chan struct{}
	done sync.WaitGroup
}

type key struct {
	tag  string
	hash uint32
}

// New starts the router's background work (group commit of logins,
// expiry of old mappings). Close stops it.
func New(node *cluster.Node, kicker Kicker, cfg Config, log *slog.Logger) *Router {
	if log == nil {
		log = slog.Default()
	}
	r := &Router{
		node: node, kicker: kicker, log: log, now: time.Now,
		moving: map[key]time.Time{},
		names:  map[string]struct{}{},
		stop:   make(chan struct{}),
	}
	r.assignments.init()
	r.SetConfig(cfg)
	r.done.Add(1)
	go r.background()
	return r
}

// SetConfig applies new settings (reload). Existing mappings are kept.
func (r *Router) SetConfig(cfg Config) {
	if cfg.HashTemplate == "" {
		cfg.HashTemplate = "%Lu"
	}
	if cfg.Expire <= 0 {
		cfg.Expire = 15 * time.Minute
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 30 * time.Second
	}
	if cfg.MaxParallelMoves <= 0 {
		cfg.MaxParallelMoves = 100
	}
	r.mu.Lock()
	r.cfg.Store(&cfg)
	r.initial = director.NewRings(cfg.InitialHosts)
	r.mu.Unlock()
}

// Close stops background work and records the logins not yet in the log.
func (r *Router) Close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	r.done.Wait()
}

func (r *Router) config() *Config { return r.cfg.Load() }

// Hash is the user's 32-bit director hash under director_username_hash.
func (r *Router) Hash(user string) (uint32, error) {
	return director.UserHash(r.config().HashTemplate, user)
}

// hashArg reads an admin argument that is either a user name or, when purely
// numeric, the hash itself (as Dovecot's admin socket does).
func (r *Router) hashArg(s string) (uint32, error) {
	if h, ok := director.ParseHashArg(s); ok {
		return h, nil
	}
	return r.Hash(s)
}

func (r *Router) expireSecs() int64 { return int64(r.config().Expire / time.Second) }

// currentRings returns the vhost rings for the present host table and its
// generation, rebuilt only when the generation moved.
func (r *Router) currentRings() (*director.Rings, uint64) {
	var gen uint64
	r.node.Read(func(s cluster.View) { gen = s.HostGen() })
	r.mu.Lock()
	rings, cached := r.rings, r.ringGen
	r.mu.Unlock()
	if rings != nil && cached == gen {
		return rings, gen
	}
	var hosts []director.Host
	r.node.Read(func(s cluster.View) {
		gen = s.HostGen()
		for _, h := range s.Hosts() {
			hosts = append(hosts, h.Host)
		}
	})
	rings = director.NewRings(hosts)
	r.mu.Lock()
	if r.rings == nil || gen >= r.ringGen {
		r.rings, r.ringGen = rings, gen
	}
	r.mu.Unlock()
	return rings, gen
}

// Route returns the backend of user (tag ""). A user without a live mapping
// is routed from this director's vhost ring at once, and the choice is
// recorded in the replicated log after the login succeeded (see Confirm). It
// waits, like Dovecot's request queue, only while the user is being moved or
// no host is available, up to QueueTimeout or ctx.
func (r *Router) Route(ctx context.Context, user string) (netip.Addr, error) {
	return r.RouteTag(ctx, user, "")
}

// RouteTag is Route for a director_tag.
func (r *Router) RouteTag(ctx context.Context, user, tag string) (netip.Addr, error) {
	cfg := r.config()
	h, err := director.UserHash(cfg.HashTemplate, user)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrTempFail, err)
	}
	k := key{tag, h}
	// Known and new users alike are decided at once; only the queue needs a timer.
	if ip, wait := r.route(k, user); !wait {
		return ip, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.QueueTimeout)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("%w: request timed out in the director queue", ErrTempFail)
		case <-time.After(100 * time.Millisecond):
		}
		if ip, wait := r.route(k, user); !wait {
			return ip, nil
		}
	}
}

// route makes one attempt, with one read of the state and one hold of the
// lock in the common cases; wait=true means "queue and retry" (the user is
// being moved or kicked, or there is no host). A user with a live mapping
// goes to it; a user this director routed but the log has not recorded yet
// goes to its provisional backend; a new user is routed from the vhost ring
// and becomes provisional. Every login is noted for the next group commit.
func (r *Router) route(k key, user string) (ip netip.Addr, wait bool) {
	now := r.now()
	var u cluster.User
	var found bool
	var gen uint64
	r.node.Read(func(s cluster.View) {
		u, found = s.User(k.tag, k.hash)
		gen = s.HostGen()
	})
	found = found && u.Timestamp+r.expireSecs() > now.Unix()
	r.mu.Lock()
	r.rememberLocked(user)
	if _, moving := r.moving[k]; moving {
		r.mu.Unlock()
		return netip.Addr{}, true
	}
	if p := r.prov[k]; p != nil && !p.lost {
		switch {
		case !found || u.Host == p.host:
			r.reuse(k, p, now.Unix())
			r.mu.Unlock()
			return p.host, false
		case p.confirmed || p.inflight > 0:
			// The log recorded the user elsewhere before this director's
			// record came back: this director lost, resolve it now.
			r.loseLocked(k, p)
			r.mu.Unlock()
			r.kickLoser(k, p, u.Host)
			return netip.Addr{}, true // wait out the kick delay, as for a move
		default:
			r.dropProv(k) // no session was opened with it
		}
	}
	if found {
		r.touch(k, now.Unix())
		r.mu.Unlock()
		return u.Host, false
	}
	rings := r.rings
	if rings == nil || r.ringGen != gen {
		r.mu.Unlock()
		rings, gen = r.currentRings()
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	host, ok := rings.Lookup(k.tag, k.hash)
	if !ok {
		return netip.Addr{}, true
	}
	return r.provisionalLocked(k, user, host, gen, now), false
}

// background commits logins in groups, refreshes the users of live sessions
// (Dovecot's proxy-notify) and expires old mappings.
func (r *Router) background() {
	defer r.done.Done()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	lastLive := time.Now()
	for {
		select {
		case <-r.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.flush(ctx)
			cancel()
			return
		case <-r.wake:
			// Let the logins of the next few milliseconds join this commit:
			// one fsync for many users instead of one each.
			select {
			case <-time.After(groupCommitDelay):
			case <-r.stop:
			}
			r.flushBackground()
		case <-flush.C:
			if exp := r.config().Expire; time.Since(lastLive) >= exp/4 {
				lastLive = time.Now()
				r.refreshLive()
			}
			r.flushBackground()
		case <-gc.C:
			r.forgetStale()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := r.node.Apply(ctx, cluster.Command{Op: cluster.OpExpire, Now: r.now().Unix(), Expire: r.expireSecs()})
			cancel()
			if err != nil {
				r.log.Warn("expiring user mappings", "err", err)
			}
		}
	}
}

// refreshLive keeps users with open sessions from expiring while they work, in every tag's
// ring, as Dovecot's proxy notifies its director.
func (r *Router) refreshLive() {
	if r.kicker == nil {
		return
	}
	live := r.kicker.Live()
	now := r.now().Unix()
	r.mu.Lock()
	for _, k := range live {
		r.touch(key{k.Tag, k.Hash}, now)
	}
	r.mu.Unlock()
}

// maxNames and maxNameBytes bound the login names kept for `director map`
// (Dovecot iterates its userdb instead, which usher does not have): names
// come from clients before any password check, so both their count and
// their bytes are bounded.
const (
	maxNames     = 200000
	maxNameBytes = 16 << 20
)

func (r *Router) remember(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rememberLocked(user)
}

func (r *Router) rememberLocked(user string) {
	if _, ok := r.names[user]; ok {
		return
	}
	for n := range r.names { // drop arbitrary ones
		if len(r.names) < maxNames && r.nameBytes+len(user) <= maxNameBytes {
			break
		}
		delete(r.names, n)
		r.nameBytes -= len(n)
	}
	r.names[user] = struct{}{}
	r.nameBytes += len(user)
}

// KnownUsers lists login names seen since start, sorted.
func (r *Router) KnownUsers() []string {
	r.mu.Lock()
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	r.mu.Unlock()
	sort.Strings(out)
	return out
}
