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
	for _, d := range []*prometheus.Desc{c.sessions, c.up, c.vhosts, c.users, c.mappings, c.raftState, c.raftContact} {
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
	}
	gauge(c.mappings, float64(c.src.Mappings()))
	c.collectRaft(c.src.Raft(), gauge)
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
