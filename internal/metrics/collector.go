package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the collector reads at scrape time. Every method may be
// called concurrently by parallel scrapes and must not block on the network.
type Source interface {
	// Sessions counts proxied sessions per (service, backend IP).
	Sessions() map[[2]string]int
	BackendStates() []BackendState
	// Mappings counts live user -> backend mappings.
	Mappings() int
	// Raft is hashicorp/raft's Stats(); nil when there is no raft node.
	Raft() map[string]string
}

// BackendState is one backend as the director sees it.
type BackendState struct {
	IP     string
	Tag    string
	Up     bool
	Vhosts int
	Users  int
	// Cause of the last up/down decision: "admin", "health" or "".
	Cause      string
	HealthDown bool // the health checks' committed verdict is "failing"
	HoldUp     bool // an admin put it up while the checks failed
}

// JobSource is what a Source may also do: report drains, rebalances and
// evacuations run by this director.
type JobSource interface {
	Jobs() []JobState
}

// JobState is the progress of one job.
type JobState struct {
	Kind, Backend                     string // Backend "" for a rebalance
	Running                           bool
	UsersLeft, InFlight, Moved, Total int
}

// raftStates are always exported, so a dashboard can alert on
// usher_raft_state{state="Leader"} == 0 without the series vanishing.
var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// raftGauges maps hashicorp/raft Stats() keys holding integers to metric
// names.
var raftGauges = []struct{ key, name, help string }{
	{"term", "usher_raft_term", "Current raft term."},
	{"last_log_index", "usher_raft_last_index", "Index of the last raft log entry."},
	{"commit_index", "usher_raft_commit_index", "Index of the last committed raft log entry."},
	{"applied_index", "usher_raft_applied_index", "Index of the last raft log entry applied to the state."},
	{"last_snapshot_index", "usher_raft_last_snapshot_index", "Index of the last raft snapshot."},
	{"fsm_pending", "usher_raft_fsm_pending", "Raft log entries waiting to be applied."},
	{"num_peers", "usher_raft_peers", "Other voting members of the ring."},
}

// Collector exports a Source's state as gauges computed at scrape time, so
// the routing hot path pays nothing for monitoring.
type Collector struct {
	src Source

	sessions, up, vhosts, users, mappings *prometheus.Desc
	down, failing, hold                   *prometheus.Desc
	jobRunning, jobLeft, jobInFlight      *prometheus.Desc
	jobMoved, jobTotal                    *prometheus.Desc
	raftState, raftContact                *prometheus.Desc
	raft                                  []*prometheus.Desc // parallel to raftGauges
}

// NewCollector returns a collector reading src. Register it with
// reg.MustRegister.
func NewCollector(src Source) *Collector {
	backend := []string{"backend", "tag"}
	c := &Collector{
		src: src,
		// Not usher_sessions: internal/stats already exports that name with
		// only a service label, and one registry cannot hold both shapes.
		sessions: prometheus.NewDesc("usher_backend_sessions",
			"Proxied sessions now connected, per service and backend.", []string{"service", "backend"}, nil),
		up: prometheus.NewDesc("usher_backend_up",
			"1 if the director routes new users to the backend, 0 if it is marked down.", backend, nil),
		vhosts: prometheus.NewDesc("usher_backend_vhosts",
			"Vhost count (ring weight) of the backend; 0 means flushed out of the ring.", backend, nil),
		users: prometheus.NewDesc("usher_backend_users",
			"Live user mappings pointing at the backend.", backend, nil),
		down: prometheus.NewDesc("usher_backend_down",
			"1 if the backend is down for this cause (admin: HOST-DOWN/directorDown, health: usher's health checks).",
			[]string{"backend", "tag", "cause"}, nil),
		failing: prometheus.NewDesc("usher_backend_health_failing",
			"1 if the health checks' last committed verdict on the backend is failing.", backend, nil),
		hold: prometheus.NewDesc("usher_backend_admin_hold",
			"1 if an admin put the backend up while its checks failed; the checks leave it up until they pass and fail anew.", backend, nil),
		jobRunning: prometheus.NewDesc("usher_move_job_running",
			"1 while this director runs the job (drain, rebalance, evacuate) on the backend.", []string{"job", "backend"}, nil),
		jobLeft: prometheus.NewDesc("usher_move_job_users_left",
			"Users still mapped to the backend being drained or evacuated.", []string{"job", "backend"}, nil),
		jobInFlight: prometheus.NewDesc("usher_move_job_in_flight",
			"User moves of the job between their kick and the end of the kick delay.", []string{"job", "backend"}, nil),
		jobMoved: prometheus.NewDesc("usher_move_job_moved",
			"Users the job has moved.", []string{"job", "backend"}, nil),
		jobTotal: prometheus.NewDesc("usher_move_job_total",
			"Users the job set out to move.", []string{"job", "backend"}, nil),
		mappings: prometheus.NewDesc("usher_user_mappings",
			"Live user -> backend mappings.", nil, nil),
		raftState: prometheus.NewDesc("usher_raft_state",
			"1 for the raft state this node is in, 0 for the others.", []string{"state"}, nil),
		raftContact: prometheus.NewDesc("usher_raft_last_contact_seconds",
			"Time since a follower last heard from the leader; 0 on the leader.", nil, nil),
	}
	for _, g := range raftGauges {
		c.raft = append(c.raft, prometheus.NewDesc(g.name, g.help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sessions, c.up, c.vhosts, c.users, c.mappings, c.raftState, c.raftContact,
		c.down, c.failing, c.hold, c.jobRunning, c.jobLeft, c.jobInFlight, c.jobMoved, c.jobTotal} {
		ch <- d
	}
	for _, d := range c.raft {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for k, n := range c.src.Sessions() {
		gauge(c.sessions, float64(n), k[0], k[1])
	}
	// A duplicate IP would make the whole scrape fail at Gather; the first
	// entry wins instead.
	seen := map[string]bool{}
	for _, b := range c.src.BackendStates() {
		if seen[b.IP] {
			continue
		}
		seen[b.IP] = true
		up := 0.0
		if b.Up {
			up = 1
		}
		gauge(c.up, up, b.IP, b.Tag)
		gauge(c.vhosts, float64(b.Vhosts), b.IP, b.Tag)
		gauge(c.users, float64(b.Users), b.IP, b.Tag)
		adminDown, healthDown := 0.0, 0.0
		switch {
		case b.Up:
		case b.Cause == "health":
			healthDown = 1
		default: // admin, or down before usher kept causes
			adminDown = 1
		}
		gauge(c.down, adminDown, b.IP, b.Tag, "admin")
		gauge(c.down, healthDown, b.IP, b.Tag, "health")
		gauge(c.failing, b01(b.HealthDown), b.IP, b.Tag)
		gauge(c.hold, b01(b.HoldUp), b.IP, b.Tag)
	}
	if js, ok := c.src.(JobSource); ok {
		for _, j := range js.Jobs() {
			gauge(c.jobRunning, b01(j.Running), j.Kind, j.Backend)
			gauge(c.jobLeft, float64(j.UsersLeft), j.Kind, j.Backend)
			gauge(c.jobInFlight, float64(j.InFlight), j.Kind, j.Backend)
			gauge(c.jobMoved, float64(j.Moved), j.Kind, j.Backend)
			gauge(c.jobTotal, float64(j.Total), j.Kind, j.Backend)
		}
	}
	gauge(c.mappings, float64(c.src.Mappings()))
	c.collectRaft(c.src.Raft(), gauge)
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *Collector) collectRaft(st map[string]string, gauge func(*prometheus.Desc, float64, ...string)) {
	if st == nil {
		return
	}
	cur, known := st["state"], false
	for _, s := range raftStates {
		v := 0.0
		if s == cur {
			v, known = 1, true
		}
		gauge(c.raftState, v, s)
	}
	if !known && cur != "" {
		gauge(c.raftState, 1, cur)
	}
	for i, g := range raftGauges {
		if v, err := strconv.ParseUint(st[g.key], 10, 64); err == nil {
			gauge(c.raft[i], float64(v))
		}
	}
	// "never" before the first contact: no sample rather than a fake one.
	if d, err := time.ParseDuration(st["last_contact"]); err == nil {
		gauge(c.raftContact, d.Seconds())
	}
}
