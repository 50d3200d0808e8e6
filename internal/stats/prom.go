package stats

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the atomics at scrape time, so the hot path pays nothing
// for Prometheus.
type collector struct {
	s *Stats

	logins, authOK, authFail, cmds, finished, sessions, bytes *prometheus.Desc
	durCount, durSum                                          *prometheus.Desc
}

func newCollector(s *Stats) *collector {
	svc := []string{"service"}
	return &collector{
		s:        s,
		logins:   prometheus.NewDesc("usher_logins_total", "Successful logins proxied.", svc, nil),
		authOK:   prometheus.NewDesc("usher_auth_successes_total", "Successful authentications.", svc, nil),
		authFail: prometheus.NewDesc("usher_auth_failures_total", "Failed authentications.", svc, nil),
		cmds:     prometheus.NewDesc("usher_commands_total", "Commands seen.", svc, nil),
		finished: prometheus.NewDesc("usher_sessions_finished_total", "Proxied sessions that ended.", svc, nil),
		sessions: prometheus.NewDesc("usher_sessions", "Proxied sessions now connected.", svc, nil),
		bytes: prometheus.NewDesc("usher_bytes_total",
			"Bytes relayed; in is client to backend, out is backend to client.", []string{"direction"}, nil),
		durCount: prometheus.NewDesc("usher_metric_events",
			"Events of each built-in metric since the last statsDump reset.", []string{"metric"}, nil),
		durSum: prometheus.NewDesc("usher_metric_duration_microseconds",
			"Summed durations of each built-in metric since the last statsDump reset.", []string{"metric"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logins, c.authOK, c.authFail, c.cmds, c.finished,
		c.sessions, c.bytes, c.durCount, c.durSum} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	c.s.services.Range(func(k, v any) bool {
		name, sv := k.(string), v.(*svc)
		counter(c.logins, sv.logins.Load(), name)
		counter(c.authOK, sv.authOK.Load(), name)
		counter(c.authFail, sv.authFail.Load(), name)
		counter(c.cmds, sv.cmds.Load(), name)
		counter(c.finished, sv.finished.Load(), name)
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(sv.connected.Load()), name)
		return true
	})
	counter(c.bytes, c.s.bytesIn.Load(), "in")
	counter(c.bytes, c.s.bytesOut.Load(), "out")
	// Only the top-level metrics: per-command series would let clients
	// choose label values.
	for _, m := range []struct {
		name string
		d    *dist
	}{
		{"auth_success", &c.s.authSuccess}, {"auth_failure", &c.s.authFailure},
		{"imap_command", &c.s.imapCommand}, {"proxy_session_finished", &c.s.proxyFinished},
	} {
		m.d.mu.Lock()
		n, sum := m.d.count, m.d.sum
		m.d.mu.Unlock()
		// Gauges, not counters: statsDump reset=true zeroes them.
		ch <- prometheus.MustNewConstMetric(c.durCount, prometheus.GaugeValue, float64(n), m.name)
		ch <- prometheus.MustNewConstMetric(c.durSum, prometheus.GaugeValue, float64(sum), m.name)
	}
}

// Register adds usher's collector to reg. It panics if called twice for the
// same registry, like prometheus.MustRegister.
func (s *Stats) Register(reg *prometheus.Registry) {
	reg.MustRegister(newCollector(s))
}
