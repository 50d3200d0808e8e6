package health

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what this director's checker did. Only the checking
// director's counters move; the backends' state with its cause is exported
// by every director (internal/metrics). One Metrics outlives the checkers a
// reload starts and stops.
type Metrics struct {
	checks, failures, transitions *prometheus.CounterVec
	latency                       *prometheus.HistogramVec
	active                        prometheus.Gauge
}

// NewMetrics returns unregistered collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_health_checks_total", Help: "Health checks this director ran, per backend."}, []string{"backend"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_health_check_failures_total", Help: "Health checks that failed, per backend."}, []string{"backend"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usher_health_transitions_total", Help: "Verdicts this director committed to the log, per backend and new state (up, down)."},
			[]string{"backend", "to"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usher_health_check_duration_seconds", Help: "Time one health check took, per backend.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"backend"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usher_health_checker", Help: "1 while this director is the one checking the backends (the raft leader)."}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) {
	reg.MustRegister(m.checks, m.failures, m.transitions, m.latency, m.active)
}

func (m *Metrics) observe(backend string, d time.Duration, ok bool) {
	m.checks.WithLabelValues(backend).Inc()
	if !ok {
		m.failures.WithLabelValues(backend).Inc()
	}
	m.latency.WithLabelValues(backend).Observe(d.Seconds())
}

func (m *Metrics) transition(backend string, down bool) {
	to := "up"
	if down {
		to = "down"
	}
	m.transitions.WithLabelValues(backend, to).Inc()
}
