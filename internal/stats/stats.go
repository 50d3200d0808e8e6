// Package stats holds usher's counters and metrics: the old-stats global
// counters behind `oldstatsDump` / `statsDump type=...`, the 2.3 metrics
// behind `statsDump`, and a Prometheus collector over the same numbers.
//
// The hot path (one call per login, command or finished session) only
// touches atomics and, for the duration metrics, one short mutex.
package stats

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxSubMetrics bounds the per-command sub-metrics, so that clients
// inventing command names cannot grow memory without limit. Commands past
// the bound still count in imap_command itself.
const maxSubMetrics = 100

// maxSubMetricName is Dovecot's limit on a sub-metric name's length.
const maxSubMetricName = 256

// svc holds monotonic per-service counters for Prometheus, and the live
// session gauge.
type svc struct {
	logins, authOK, authFail, cmds, finished atomic.Uint64
	connected                                atomic.Int64
}

// oldCounters are the resettable old-stats global counters.
type oldCounters struct {
	logins, cmds, authOK, authFail atomic.Uint64
	resetTS                        atomic.Int64 // unix seconds
	lastUpdate                     atomic.Int64 // unix microseconds, 0: never
}

// Stats is safe for concurrent use.
type Stats struct {
	now func() time.Time

	old      oldCounters
	services sync.Map // string -> *svc
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	authSuccess, authFailure, imapCommand, proxyFinished dist

	subMu   sync.RWMutex
	subs    map[string]*dist
	subList []string // creation order, the dump order
}

// New returns zeroed stats; now is the clock (time.Now if nil).
func New(now func() time.Time) *Stats {
	if now == nil {
		now = time.Now
	}
	s := &Stats{now: now, subs: make(map[string]*dist)}
	s.old.resetTS.Store(now().Unix())
	return s
}

func (s *Stats) service(name string) *svc {
	if v, ok := s.services.Load(name); ok {
		return v.(*svc)
	}
	v, _ := s.services.LoadOrStore(name, new(svc))
	return v.(*svc)
}

func (s *Stats) touch() { s.old.lastUpdate.Store(s.now().UnixMicro()) }

func usecs(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d.Microseconds())
}

// Login counts a successful login (old-stats num_logins).
func (s *Stats) Login(service string) {
	s.service(service).logins.Add(1)
	s.old.logins.Add(1)
	s.touch()
}

// AuthSuccess records a successful authentication that took d.
func (s *Stats) AuthSuccess(service string, d time.Duration) {
	s.service(service).authOK.Add(1)
	s.old.authOK.Add(1)
	s.authSuccess.add(usecs(d))
	s.touch()
}

// AuthFailure records a failed authentication that took d (including any
// penalty or failure delay, as Dovecot's event duration does).
func (s *Stats) AuthFailure(service string, d time.Duration) {
	s.service(service).authFail.Add(1)
	s.old.authFail.Add(1)
	s.authFailure.add(usecs(d))
	s.touch()
}

// Command records an IMAP command (name as the client sent it) that took d.
func (s *Stats) Command(service, name string, d time.Duration) {
	s.service(service).cmds.Add(1)
	s.old.cmds.Add(1)
	v := usecs(d)
	s.imapCommand.add(v)
	if sub := s.sub(name); sub != nil {
		sub.add(v)
	}
	s.touch()
}

// PreloginCommand records a command a front-end answered itself before login (CAPABILITY,
// ID, LOGIN, ...). It counts in old-stats num_cmds only: Dovecot's imap_command metric is fed
// by the imap process's imap_command_finished events, which a director never runs (it relays
// the logged-in session unparsed), so on a director that metric stays at zero.
func (s *Stats) PreloginCommand(service, name string, d time.Duration) {
	s.service(service).cmds.Add(1)
	s.old.cmds.Add(1)
	s.touch()
}

// SessionStart counts a proxied session as connected. Every SessionStart
// is to be matched by one SessionFinished.
func (s *Stats) SessionStart(service string) {
	s.service(service).connected.Add(1)
	s.touch()
}

// SessionFinished records the end of a proxied session that lasted d and
// relayed in bytes from the client and out bytes to it.
func (s *Stats) SessionFinished(service string, d time.Duration, in, out int64) {
	sv := s.service(service)
	sv.finished.Add(1)
	// Never below zero, so a caller that skipped SessionStart cannot make
	// num_connected_sessions negative.
	for {
		c := sv.connected.Load()
		if c <= 0 || sv.connected.CompareAndSwap(c, c-1) {
			break
		}
	}
	if in > 0 {
		s.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		s.bytesOut.Add(uint64(out))
	}
	s.proxyFinished.add(usecs(d))
	s.touch()
}

// subName is the sub-metric name for a command, as Dovecot builds it from
// the cmd_name field: whitespace becomes '_'.
func subName(cmd string) string {
	cmd = strings.ToUpper(cmd)
	if len(cmd) > maxSubMetricName {
		cmd = cmd[:maxSubMetricName]
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return '_'
		}
		return r
	}, cmd)
}

func (s *Stats) sub(cmd string) *dist {
	name := subName(cmd)
	if name == "" {
		return nil
	}
	s.subMu.RLock()
	d := s.subs[name]
	s.subMu.RUnlock()
	if d != nil {
		return d
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if d = s.subs[name]; d == nil && len(s.subList) < maxSubMetrics {
		d = new(dist)
		s.subs[name] = d
		s.subList = append(s.subList, name)
	}
	return d
}

// Metrics returns the 2.3 metrics in dump order: auth_success,
// auth_failure, imap_command followed by its per-command sub-metrics
// (imap_command_<CMD>), proxy_session_finished. With reset, every metric
// is zeroed right after being read (DUMP-RESET); sub-metrics stay listed.
func (s *Stats) Metrics(reset bool) []Metric {
	s.subMu.RLock()
	names := append([]string(nil), s.subList...)
	subs := make([]*dist, len(names))
	for i, n := range names {
		subs[i] = s.subs[n]
	}
	s.subMu.RUnlock()

	out := make([]Metric, 0, 4+len(names))
	add := func(name string, d *dist) {
		m := Metric{Name: name}
		d.snapshot(&m)
		if reset {
			d.reset()
		}
		out = append(out, m)
	}
	add("auth_success", &s.authSuccess)
	add("auth_failure", &s.authFailure)
	add("imap_command", &s.imapCommand)
	for i, n := range names {
		add("imap_command_"+n, subs[i])
	}
	add("proxy_session_finished", &s.proxyFinished)
	return out
}

// ResetMetrics zeroes the 2.3 metrics.
func (s *Stats) ResetMetrics() { s.Metrics(true) }

// Global is a snapshot of the old-stats global entry plus the byte totals.
type Global struct {
	ResetTimestamp       time.Time
	LastUpdate           time.Time // zero if nothing happened since the reset
	NumLogins, NumCmds   uint64
	NumConnectedSessions int64
	AuthSuccesses        uint64
	AuthFailures         uint64
	BytesIn, BytesOut    uint64 // since start; not reset
}

// Global returns the current old-stats global counters.
func (s *Stats) Global() Global {
	g := Global{
		ResetTimestamp: time.Unix(s.old.resetTS.Load(), 0),
		NumLogins:      s.old.logins.Load(),
		NumCmds:        s.old.cmds.Load(),
		AuthSuccesses:  s.old.authOK.Load(),
		AuthFailures:   s.old.authFail.Load(),
		BytesIn:        s.bytesIn.Load(),
		BytesOut:       s.bytesOut.Load(),
	}
	if us := s.old.lastUpdate.Load(); us != 0 {
		g.LastUpdate = time.UnixMicro(us)
	}
	s.services.Range(func(_, v any) bool {
		g.NumConnectedSessions += v.(*svc).connected.Load()
		return true
	})
	return g
}

// ResetOld is old-stats RESET: it zeroes the global entry's counters, sets
// reset_timestamp to now and clears last_update, but leaves
// num_connected_sessions, which counts live sessions. Prometheus counters,
// being monotonic, are not affected.
func (s *Stats) ResetOld() {
	s.old.logins.Store(0)
	s.old.cmds.Store(0)
	s.old.authOK.Store(0)
	s.old.authFail.Store(0)
	s.old.lastUpdate.Store(0)
	s.old.resetTS.Store(s.now().Unix())
}
