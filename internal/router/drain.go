package router

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// Moving users off a backend in the background: `usher director drain`,
// `usher director rebalance`, and the evacuation of a backend the health
// checks put down. All three use the moves of HOST-RESET-USERS (reset: kick
// on every director, then the new mapping, then the kick delay), at most
// maxParallel at a time, and report progress while they run.

// Job kinds.
const (
	JobDrain     = "drain"
	JobRebalance = "rebalance"
	JobEvacuate  = "evacuate"
)

// Progress is a snapshot of one job.
type Progress struct {
	Kind  string
	Host  netip.Addr // invalid for rebalance
	State string     // running, done, failed
	Err   string

	MaxParallel  int
	Total        int // users the job set out to move
	Moved        int
	Failed       int
	InFlight     int // moves between their kick and the end of the kick delay
	PeakInFlight int
	UsersLeft    int // drain, evacuate: live mappings still on the host
	SessionsLeft int // drain, evacuate: proxied sessions to the host through this director

	Started, Finished time.Time
}

// sessionCounter is what the Kicker given to New may also do: count the
// proxied sessions to a backend on this director.
type sessionCounter interface {
	CountBackend(ip netip.Addr) int
}

// ErrNoTarget: no other backend is up to take the users.
var ErrNoTarget = errors.New("no other backend is up to take the users")

type job struct {
	mu sync.Mutex
	p  Progress
}

type jobTable struct {
	mu   sync.Mutex
	jobs map[string]*job // by jobKey; finished jobs stay until the next of their key
}

func jobKey(kind string, ip netip.Addr) string { return kind + " " + ip.String() }

// startJob registers a job unless one of the same key is running; it
// returns the running one then, and started=false.
func (r *Router) startJob(kind string, ip netip.Addr, maxParallel int) (j *job, started bool) {
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	if r.jobs.jobs == nil {
		r.jobs.jobs = map[string]*job{}
	}
	k := jobKey(kind, ip)
	if old := r.jobs.jobs[k]; old != nil {
		old.mu.Lock()
		running := old.p.State == "running"
		old.mu.Unlock()
		if running {
			return old, false
		}
	}
	j = &job{p: Progress{Kind: kind, Host: ip, State: "running", MaxParallel: maxParallel, Started: r.now()}}
	r.jobs.jobs[k] = j
	return j, true
}

// Jobs lists the jobs this director ran since it started (the latest of
// each kind and host), with their progress now.
func (r *Router) Jobs() []Progress {
	r.jobs.mu.Lock()
	js := make([]*job, 0, len(r.jobs.jobs))
	for _, j := range r.jobs.jobs {
		js = append(js, j)
	}
	r.jobs.mu.Unlock()
	out := make([]Progress, 0, len(js))
	for _, j := range js {
		out = append(out, r.progress(j))
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].Host.Less(out[b].Host)
	})
	return out
}

func (r *Router) progress(j *job) Progress {
	j.mu.Lock()
	p := j.p
	j.mu.Unlock()
	if p.Host.IsValid() {
		for _, h := range r.Hosts() {
			if h.IP == p.Host {
				p.UsersLeft = h.Users
			}
		}
		if sc, ok := r.kicker.(sessionCounter); ok {
			p.SessionsLeft = sc.CountBackend(p.Host)
		}
	}
	return p
}

func (r *Router) maxParallel(n int) int {
	if n <= 0 {
		return r.config().MaxParallelMoves
	}
	return n
}

// jobContext ends when the router closes.
func (r *Router) jobContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Drain stops new users on ip (vhost count 0, as Dovecot's runbook did by
// hand) and moves its users to where the ring now puts them, at most
// maxParallel at a time (<= 0: director_max_parallel_moves), in the
// background. A drain of the host already running is joined. It returns
// the progress at the start; Jobs reports it later.
func (r *Router) Drain(ctx context.Context, ip netip.Addr, maxParallel int) (Progress, error) {
	ip = ip.Unmap()
	if _, ok := r.host(ip); !ok {
		return Progress{}, ErrNotFound
	}
	maxParallel = r.maxParallel(maxParallel)
	if _, err := r.apply(ctx, cluster.Command{Op: cluster.OpHostUpdate, IP: ip, VhostCount: 0, Now: r.now().Unix()}); err != nil {
		return Progress{}, err
	}
	j, started := r.startJob(JobDrain, ip, maxParallel)
	if started {
		go r.runJob(j, func(ctx context.Context) error {
			return r.moveOff(ctx, j, ip, func() bool { return true })
		})
	}
	return r.progress(j), nil
}

// Rebalance moves every user whose mapping differs from where the ring now
// puts it (after adding a backend, say), in the background, as Drain does.
func (r *Router) Rebalance(ctx context.Context, maxParallel int) (Progress, error) {
	j, started := r.startJob(JobRebalance, netip.Addr{}, r.maxParallel(maxParallel))
	if started {
		go r.runJob(j, func(ctx context.Context) error {
			rings, _ := r.currentRings()
			var todo []UserEntry
			for _, u := range r.Users(nil) {
				if want, ok := rings.Lookup(u.Tag, u.Hash); ok && want != u.Host {
					todo = append(todo, u)
				}
			}
			return r.moveUsers(ctx, j, todo, func() bool { return true })
		})
	}
	return r.progress(j), nil
}

// Evacuate moves the users of a backend the health checks put down, while
// it stays down for that reason, and returns when done or ctx ends. Users
// moved are not moved back when the backend recovers.
func (r *Router) Evacuate(ctx context.Context, ip netip.Addr) {
	j, started := r.startJob(JobEvacuate, ip, r.maxParallel(0))
	if !started {
		return
	}
	stillDown := func() bool {
		h, ok := r.host(ip)
		return ok && h.Down && h.Cause == cluster.CauseHealth
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	r.finish(j, r.moveOff(ctx, j, ip, stillDown))
}

func (r *Router) runJob(j *job, fn func(context.Context) error) {
	ctx, cancel := r.jobContext()
	defer cancel()
	r.finish(j, fn(ctx))
}

func (r *Router) finish(j *job, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.p.State, j.p.Finished = "done", r.now()
	if err != nil {
		j.p.State, j.p.Err = "failed", err.Error()
		r.log.Warn("moving users off a backend failed", "job", j.p.Kind, "host", j.p.Host.String(), "err", err)
		return
	}
	r.log.Info("users moved", "job", j.p.Kind, "host", j.p.Host.String(), "moved", j.p.Moved, "failed", j.p.Failed)
}

func (r *Router) host(ip netip.Addr) (cluster.Host, bool) {
	var h cluster.Host
	var ok bool
	r.node.Read(func(s cluster.View) { h, ok = s.Host(ip) })
	return h, ok
}

// moveOff moves ip's users until none is left. A user who logged in while
// a pass ran (sticky to ip until moved) is taken by the next pass.
func (r *Router) moveOff(ctx context.Context, j *job, ip netip.Addr, still func() bool) error {
	for pass := 0; pass < 5; pass++ {
		users := r.Users(&ip)
		if len(users) == 0 {
			return nil
		}
		if err := r.moveUsers(ctx, j, users, still); err != nil || !still() {
			return err
		}
	}
	if n := len(r.Users(&ip)); n > 0 {
		return fmt.Errorf("%d users still mapped to %s after 5 passes", n, ip)
	}
	return nil
}

// moveUsers moves each user to its ring choice, at most j's MaxParallel at
// a time, while still() holds.
func (r *Router) moveUsers(ctx context.Context, j *job, users []UserEntry, still func() bool) error {
	j.mu.Lock()
	j.p.Total += len(users)
	limit := j.p.MaxParallel
	j.mu.Unlock()
	rings, _ := r.currentRings()
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for _, u := range users {
		if ctx.Err() != nil || !still() {
			break
		}
		want, ok := rings.Lookup(u.Tag, u.Hash)
		if !ok || want == u.Host {
			wg.Wait()
			return ErrNoTarget
		}
		sem <- struct{}{}
		j.mu.Lock()
		j.p.InFlight++
		j.p.PeakInFlight = max(j.p.PeakInFlight, j.p.InFlight)
		j.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.reset(ctx, u, want, true)
			j.mu.Lock()
			j.p.InFlight--
			if err != nil {
				j.p.Failed++
			} else {
				j.p.Moved++
			}
			j.mu.Unlock()
			<-sem
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// SetHealth commits the health checks' verdict on ip (see cluster's state
// model: admin decisions win).
func (r *Router) SetHealth(ctx context.Context, ip netip.Addr, down bool) error {
	op := cluster.OpHealthUp
	if down {
		op = cluster.OpHealthDown
	}
	_, err := r.apply(ctx, cluster.Command{Op: op, IP: ip, Now: r.now().Unix()})
	return err
}
