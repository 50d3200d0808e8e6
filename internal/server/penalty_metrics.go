package server

import "github.com/prometheus/client_golang/prometheus"

// penaltyGauge exports how many client addresses (/48 for IPv6) carry an
// authentication-failure penalty now: a steep rise is a password-guessing
// storm (the UsherPenaltyStorm alert in dist/prometheus).
func penaltyGauge(srv *Server) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usher_penalized_clients",
		Help: "Client addresses (/48 for IPv6) with a live authentication-failure penalty.",
	}, func() float64 { return float64(len(srv.penalties.Dump())) })
}
