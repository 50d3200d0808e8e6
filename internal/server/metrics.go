package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/metrics"
)

// metricsSource feeds the scrape-time gauges from the running server.
type metricsSource struct{ srv *Server }

func (m metricsSource) Sessions() map[[2]string]int {
	out := map[[2]string]int{}
	for _, s := range m.srv.sessions.List() {
		out[[2]string{s.Service, addrString(s.Backend.Addr())}]++
	}
	return out
}

func (m metricsSource) BackendStates() []metrics.BackendState {
	var out []metrics.BackendState
	for _, h := range m.srv.router.Hosts() {
		out = append(out, metrics.BackendState{IP: h.IP.String(), Tag: h.Tag, Up: !h.Down, Vhosts: h.VhostCount, Users: h.Users,
			Cause: h.Cause.String(), HealthDown: h.HealthDown, HoldUp: h.HoldUp})
	}
	return out
}

func (m metricsSource) Jobs() []metrics.JobState {
	var out []metrics.JobState
	for _, j := range m.srv.router.Jobs() {
		out = append(out, metrics.JobState{
			Kind: j.Kind, Backend: addrString(j.Host), Running: j.State == "running",
			UsersLeft: j.UsersLeft, InFlight: j.InFlight, Moved: j.Moved, Total: j.Total,
		})
	}
	return out
}

func (m metricsSource) Mappings() int {
	n := 0
	m.srv.node.Read(func(s cluster.View) { n = s.UserTotal() })
	return n
}

func (m metricsSource) Raft() map[string]string { return m.srv.node.Stats() }

// ready says whether the state is loaded and the listeners are up.
func (srv *Server) ready() error {
	if !srv.isReady.Load() {
		return errors.New("starting")
	}
	select {
	case <-srv.stopped:
		return errors.New("stopped")
	default:
	}
	return nil
}

// startMetrics serves /metrics, /healthz and /readyz on the listener
// `service usher { inet_listener metrics { port } }`, without authentication:
// bind it to an address only the monitoring system reaches.
func (srv *Server) startMetrics(s *config.Settings, l *config.InetListener) error {
	reg := prometheus.NewRegistry()
	srv.stats.Register(reg)
	srv.healthMetrics.Register(reg)
	reg.MustRegister(metrics.NewCollector(metricsSource{srv}), penaltyGauge(srv))
	rt := srv.router
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "usher_director_assignment_conflicts_total",
			Help: "New users this director routed before the ring recorded them elsewhere; their sessions here were kicked.",
		}, func() float64 { return float64(rt.Conflicts()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "usher_director_assignments_unrecorded_total",
			Help: "New users routed but not recorded because too many assignments were waiting for the ring.",
		}, func() float64 { return float64(rt.Unrecorded()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "usher_director_assignments_waiting",
			Help: "New users routed by this director whose assignment is not in the ring's log yet.",
		}, func() float64 { return float64(rt.Provisional()) }),
	)
	hs := &http.Server{
		Handler:           metrics.NewHandler(reg, srv.ready),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	lns, err := listenTCP(s.Listen, l)
	if err != nil {
		return err
	}
	srv.serve("usher", lns, func(ln net.Listener) error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	srv.onStop(func(ctx context.Context) { hs.Shutdown(ctx) })
	for _, ln := range lns {
		srv.log.Info("listening", "service", "usher", "listener", "metrics", "addr", ln.Addr().String())
	}
	return nil
}
