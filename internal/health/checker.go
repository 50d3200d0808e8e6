package health

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one backend as the replicated state has it.
type Target struct {
	IP netip.Addr
	// HealthDown is the checks' verdict as last committed to the log.
	HealthDown bool
	// Evacuate: the checks put the host down and users are still mapped
	// to it; they are to be moved off.
	Evacuate bool
}

// Config is what usher_health_check_* set. SetConfig swaps it on reload.
type Config struct {
	Probe Probe
	// PortKnown: Probe.Port is where logins go (the passdb sends every login
	// there, or names no port). Otherwise it is a guess: a host is not put
	// down on it before a check has passed there (see tracker).
	PortKnown  bool
	Interval   time.Duration
	Fall, Rise int
}

// Deps connects the checker to the rest of usher.
type Deps struct {
	// Active reports whether this director is the one that checks (the raft
	// leader). It is asked several times a second.
	Active func() bool
	// Targets lists the backends.
	Targets func() []Target
	// Report commits a verdict to the log (OpHealthDown / OpHealthUp).
	Report func(ctx context.Context, ip netip.Addr, down bool) error
	// Evacuate moves the users of a host the checks put down, bounded by
	// director_max_parallel_moves; it returns when done or ctx ends. Nil:
	// users are not moved.
	Evacuate func(ctx context.Context, ip netip.Addr)
	// Observe, if set, sees every check's result (err nil: passed).
	Observe func(ip netip.Addr, err error)
	Logger  *slog.Logger
}

// pollActive is how often a director that is not checking asks whether it
// should: a new leader starts checking within this of its election.
const pollActive = 200 * time.Millisecond

// maxConcurrent bounds the probes in flight in one round.
const maxConcurrent = 32

// Checker runs the checks while Deps.Active says so.
type Checker struct {
	deps    Deps
	cfg     atomic.Pointer[Config]
	metrics *Metrics

	mu         sync.Mutex
	trackers   map[netip.Addr]*tracker
	learned    map[learnedKey]int // see Learn
	evacuating map[netip.Addr]bool
	// active ends when this director stops checking: its evacuations stop
	// then, and the next checker takes them over.
	active       context.Context
	activeCancel context.CancelFunc

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New starts a checker that counts into m; Close stops it.
func New(cfg Config, deps Deps, m *Metrics) *Checker {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	c := &Checker{
		deps: deps, metrics: m,
		trackers: map[netip.Addr]*tracker{}, evacuating: map[netip.Addr]bool{},
		learned: map[learnedKey]int{},
		done:    make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.SetConfig(cfg)
	go c.run()
	return c
}

// SetConfig applies reloaded settings from the next round on.
func (c *Checker) SetConfig(cfg Config) {
	cfg.Interval = max(cfg.Interval, 100*time.Millisecond)
	if cfg.Probe.Timeout <= 0 || cfg.Probe.Timeout > cfg.Interval {
		cfg.Probe.Timeout = cfg.Interval
	}
	cfg.Fall, cfg.Rise = max(cfg.Fall, 1), max(cfg.Rise, 1)
	c.cfg.Store(&cfg)
}

// learnedKey: a port learned for one kind of check says nothing of another's.
type learnedKey struct {
	kind string
	ip   netip.Addr
}

// Learn records that a login for service ("imap", "pop3", "lmtp", ...) was
// proxied to dest: unless Config.PortKnown, checks of that kind probe dest's
// port on that host from the next round on, wherever the passdb's port= (or
// a Dovecot auth service's) sends logins. Ports of hosts that are not
// backends are forgotten at the next round.
func (c *Checker) Learn(service string, dest netip.AddrPort) {
	if !dest.IsValid() || dest.Port() == 0 {
		return
	}
	k := learnedKey{service, dest.Addr().Unmap()}
	c.mu.Lock()
	c.learned[k] = int(dest.Port())
	c.mu.Unlock()
}

// Close stops checking and waits for running evacuations to give up.
func (c *Checker) Close() {
	c.cancel()
	<-c.done
}

func (c *Checker) run() {
	defer close(c.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next time.Time
	active := false
	for {
		select {
		case <-c.ctx.Done():
			c.reset()
			return
		case <-timer.C:
		}
		now := time.Now()
		wait := pollActive
		switch {
		case !c.deps.Active():
			if active {
				active = false
				c.reset()
				c.deps.Logger.Info("health checks: no longer the checking director")
			}
		case !active:
			active, next = true, now
			c.mu.Lock()
			c.active, c.activeCancel = context.WithCancel(c.ctx)
			c.mu.Unlock()
			c.metrics.active.Set(1)
			c.deps.Logger.Info("health checks: this director checks the backends")
			fallthrough
		default:
			if !now.Before(next) {
				c.round()
				next = now.Add(c.cfg.Load().Interval)
			}
			wait = min(wait, time.Until(next))
		}
		timer.Reset(max(wait, time.Millisecond))
	}
}

// reset forgets the counters: the next checker starts from the committed
// verdicts.
func (c *Checker) reset() {
	c.mu.Lock()
	c.trackers = map[netip.Addr]*tracker{}
	if c.activeCancel != nil {
		c.activeCancel()
	}
	c.mu.Unlock()
	c.metrics.active.Set(0)
}

type result struct {
	ok  bool
	err error
}

// round checks every backend once, then commits the verdicts that differ
// from the log's and starts evacuations.
func (c *Checker) round() {
	cfg := c.cfg.Load()
	targets := c.deps.Targets()
	results := make([]result, len(targets))
	ports := make([]int, len(targets))
	known := make([]bool, len(targets))
	c.mu.Lock()
	for i, t := range targets {
		ports[i], known[i] = cfg.Probe.Port, cfg.PortKnown
		// A learned port replaces only a guess, and arms only once a check
		// passes there: the login may have used the passdb's ssl= where the
		// probe follows backend_ssl.
		if p, ok := c.learned[learnedKey{cfg.Probe.Kind, t.IP}]; ok && !cfg.PortKnown {
			ports[i] = p
		}
	}
	c.mu.Unlock()
	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			p := cfg.Probe
			p.Port = ports[i]
			err := p.Check(c.ctx, t.IP)
			c.metrics.observe(t.IP.String(), time.Since(start), err == nil)
			if c.deps.Observe != nil {
				c.deps.Observe(t.IP, err)
			}
			results[i] = result{err == nil, err}
		}()
	}
	wg.Wait()
	if c.ctx.Err() != nil {
		return
	}

	c.mu.Lock()
	seen := make(map[netip.Addr]bool, len(targets))
	type verdict struct {
		ip   netip.Addr
		down bool
	}
	var commit []verdict
	for i, t := range targets {
		seen[t.IP] = true
		tr := c.trackers[t.IP]
		if tr == nil {
			tr = &tracker{down: t.HealthDown}
			c.trackers[t.IP] = tr
		}
		tr.probing(ports[i], known[i])
		if tr.observe(results[i].ok, cfg.Fall, cfg.Rise) {
			c.deps.Logger.Warn("health check verdict changed", "backend", t.IP.String(), "down", tr.down, "err", results[i].err)
		} else if !tr.armed && !tr.down && !tr.warned {
			tr.warned = true
			c.deps.Logger.Warn("health check never passed on this port: the backend is not taken down by the checks until one passes; "+
				"if logins go to another port, set "+portSetting(cfg.Probe.Kind)+" or the passdb's port= to it",
				"backend", t.IP.String(), "port", ports[i], "err", results[i].err)
		} else if !results[i].ok {
			c.deps.Logger.Debug("health check failed", "backend", t.IP.String(), "err", results[i].err)
		}
		if tr.down != t.HealthDown {
			commit = append(commit, verdict{t.IP, tr.down})
		}
	}
	for ip := range c.trackers {
		if !seen[ip] {
			delete(c.trackers, ip)
		}
	}
	for k := range c.learned {
		if !seen[k.ip] {
			delete(c.learned, k)
		}
	}
	c.mu.Unlock()

	for _, v := range commit {
		ctx, cancel := context.WithTimeout(c.ctx, cfg.Interval+cfg.Probe.Timeout)
		err := c.deps.Report(ctx, v.ip, v.down)
		cancel()
		if err != nil {
			// The verdict still differs from the log's next round: retried then.
			c.deps.Logger.Warn("health check verdict not committed", "backend", v.ip.String(), "down", v.down, "err", err)
			continue
		}
		c.metrics.transition(v.ip.String(), v.down)
	}
	for _, t := range targets {
		if t.Evacuate && c.deps.Evacuate != nil {
			c.evacuate(t.IP)
		}
	}
}

// evacuate moves a host's users off in the background, once at a time,
// while this director is the checking one.
func (c *Checker) evacuate(ip netip.Addr) {
	c.mu.Lock()
	if c.evacuating[ip] {
		c.mu.Unlock()
		return
	}
	c.evacuating[ip] = true
	ctx := c.active
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.evacuating, ip)
			c.mu.Unlock()
		}()
		c.deps.Evacuate(ctx, ip)
	}()
}

// portSetting names the setting that gives a kind of check its port.
func portSetting(kind string) string {
	return "backend_" + kind + "_port"
}
