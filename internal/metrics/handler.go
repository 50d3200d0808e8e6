package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewHandler serves /metrics from reg, /healthz and /readyz. /healthz
// answers 200 whenever the process can answer at all; /readyz answers 200
// only while ready returns nil and 503 with its error otherwise, so a load
// balancer drains a node that lost its state or is shutting down while the
// orchestrator keeps it alive. Every other path is 404.
func NewHandler(reg *prometheus.Registry, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A failing collector must not hide the other series.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !probeMethod(w, r) {
			return
		}
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !probeMethod(w, r) {
			return
		}
		if ready != nil {
			if err := ready(); err != nil {
				plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		plain(w, http.StatusOK, "ok")
	})
	return mux
}

// probeMethod allows GET and HEAD only: probes never change anything, and
// refusing the rest keeps the surface small.
func probeMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	plain(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(body + "\n"))
}
