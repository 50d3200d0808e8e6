// Package logintest has in-memory fakes of the login interfaces, so front-end tests need no
// other usher package. All fakes are safe for concurrent use.
package logintest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/passdb"
)

// Router sends every user to Backend, or fails with Err when set.
type Router struct {
	mu       sync.Mutex
	Backend  netip.Addr
	Err      error
	calls    []string
	confirms []Confirmed
}

// Route implements login.Router.
func (r *Router) Route(_ context.Context, user string) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, user)
	if r.Err != nil {
		return netip.Addr{}, r.Err
	}
	return r.Backend, nil
}

// Confirm implements login.Router; it records the reports.
func (r *Router) Confirm(user string, backend netip.Addr, accepted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.confirms = append(r.confirms, Confirmed{user, backend, accepted})
}

// Confirmed is one Confirm call.
type Confirmed struct {
	User     string
	Backend  netip.Addr
	Accepted bool
}

// Confirms returns the Confirm calls so far.
func (r *Router) Confirms() []Confirmed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Confirmed(nil), r.confirms...)
}

// SetErr changes the error returned by later Route calls.
func (r *Router) SetErr(err error) {
	r.mu.Lock()
	r.Err = err
	r.mu.Unlock()
}

// Calls returns the users routed so far.
func (r *Router) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// TempFail is a Router error that wraps login.ErrTempFail.
var TempFail = fmt.Errorf("no backend available: %w", login.ErrTempFail)

// PenaltyEvent is one call recorded by Penalties.
type PenaltyEvent struct {
	Kind     string // "begin", "fail" or "succeed"
	IP       netip.Addr
	Attempt  int
	User     string
	Password string
}

// Penalties records calls; Begin returns Delay.
type Penalties struct {
	mu     sync.Mutex
	Delay  time.Duration
	n      int
	events []PenaltyEvent
}

// Begin implements login.Penalties.
func (p *Penalties) Begin(ip netip.Addr) (time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.events = append(p.events, PenaltyEvent{Kind: "begin", IP: ip, Attempt: p.n})
	return p.Delay, p.n
}

// Fail implements login.Penalties.
func (p *Penalties) Fail(ip netip.Addr, attempt int, user, password string) {
	p.record(PenaltyEvent{Kind: "fail", IP: ip, Attempt: attempt, User: user, Password: password})
}

// Succeed implements login.Penalties.
func (p *Penalties) Succeed(ip netip.Addr, attempt int) {
	p.record(PenaltyEvent{Kind: "succeed", IP: ip, Attempt: attempt})
}

func (p *Penalties) record(e PenaltyEvent) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

// Events returns the calls recorded so far.
func (p *Penalties) Events() []PenaltyEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PenaltyEvent(nil), p.events...)
}

// Count returns how many calls of kind were recorded.
func (p *Penalties) Count(kind string) int {
	n := 0
	for _, e := range p.Events() {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// Session is one registration seen by Sessions.
type Session struct {
	Info     login.SessionInfo
	kick     func(string)
	Done     bool
	In, Out  int64
	finished chan struct{}
}

// Sessions is an in-memory registry.
type Sessions struct {
	mu   sync.Mutex
	list []*Session
	// UserIP, when set, overrides CountUserIP.
	UserIP func(user string, ip netip.Addr) int
}

// Register implements login.Sessions.
func (s *Sessions) Register(info login.SessionInfo, kick func(string)) func(int64, int64) {
	sess := &Session{Info: info, kick: kick, finished: make(chan struct{})}
	s.mu.Lock()
	s.list = append(s.list, sess)
	s.mu.Unlock()
	var once sync.Once
	return func(in, out int64) {
		once.Do(func() {
			s.mu.Lock()
			sess.Done, sess.In, sess.Out = true, in, out
			s.mu.Unlock()
			close(sess.finished)
		})
	}
}

// CountUserIP implements login.Sessions: live sessions of user from ip.
func (s *Sessions) CountUserIP(user string, ip netip.Addr) int {
	if s.UserIP != nil {
		return s.UserIP(user, ip)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.list {
		if !x.Done && x.Info.User == user && x.Info.Client.Addr() == ip {
			n++
		}
	}
	return n
}

// All returns copies of every registration so far.
func (s *Sessions) All() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, len(s.list))
	for i, x := range s.list {
		out[i] = *x
	}
	return out
}

// KickAll kicks every live session with reason.
func (s *Sessions) KickAll(reason string) {
	s.mu.Lock()
	list := append([]*Session(nil), s.list...)
	s.mu.Unlock()
	for _, x := range list {
		x.kick(reason)
	}
}

// WaitDone blocks until the i-th registered session has reported done, or ctx ends.
func (s *Sessions) WaitDone(ctx context.Context, i int) (Session, error) {
	s.mu.Lock()
	if i >= len(s.list) {
		s.mu.Unlock()
		return Session{}, fmt.Errorf("no session %d", i)
	}
	x := s.list[i]
	s.mu.Unlock()
	select {
	case <-x.finished:
	case <-ctx.Done():
		return Session{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return *x, nil
}

// Stats counts events by kind ("login", "auth_success", "auth_failure", "command:<NAME>",
// "session_finished").
type Stats struct {
	mu     sync.Mutex
	counts map[string]int
}

func (s *Stats) inc(k string) {
	s.mu.Lock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[k]++
	s.mu.Unlock()
}

// Count returns how often event k happened.
func (s *Stats) Count(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[k]
}

// Login implements login.Stats.
func (s *Stats) Login(string) { s.inc("login") }

// AuthSuccess implements login.Stats.
func (s *Stats) AuthSuccess(string, time.Duration) { s.inc("auth_success") }

// AuthFailure implements login.Stats.
func (s *Stats) AuthFailure(string, time.Duration) { s.inc("auth_failure") }

// Command implements login.Stats.
func (s *Stats) Command(_, name string, _ time.Duration) { s.inc("command:" + name) }

// SessionFinished implements login.Stats.
func (s *Stats) SessionFinished(string, time.Duration, int64, int64) { s.inc("session_finished") }

// Env returns an Env wired to fresh fakes, routing every user to backend.
func Env(backend netip.Addr) (*login.Env, *Router, *Penalties, *Sessions, *Stats) {
	r := &Router{Backend: backend}
	p := &Penalties{}
	s := &Sessions{}
	st := &Stats{}
	env := &login.Env{Router: r, Penalties: p, Sessions: s, Stats: st, Hostname: "usher.test",
		DisablePlaintextAuth: true}
	return env, r, p, s, st
}

// Passdb accepts only the passwords in its map; Calls counts lookups. A user's reply fields
// are those given with SetFields, else proxy and Forward as forward_* fields.
type Passdb struct {
	mu      sync.Mutex
	Users   map[string]string
	Forward []string
	fields  map[string][]string
	calls   int
}

// SetFields sets the reply fields of user ("key=value"; no proxy field unless given).
func (p *Passdb) SetFields(user string, fields ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fields == nil {
		p.fields = map[string][]string{}
	}
	p.fields[user] = fields
}

// Authenticate implements login.Passdb.
func (p *Passdb) Authenticate(_ context.Context, req passdb.Request) (passdb.Reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if want, ok := p.Users[req.User]; !ok || want != req.Pass {
		return passdb.Reply{}, nil
	}
	r := passdb.Reply{OK: true, Fields: []string{"proxy"}}
	for _, f := range p.Forward {
		r.Fields = append(r.Fields, "forward_"+f)
	}
	if f, ok := p.fields[req.User]; ok {
		r.Fields = f
	}
	return r, nil
}

// Calls returns how many lookups were made.
func (p *Passdb) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}
