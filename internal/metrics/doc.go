// Package metrics serves usher's operational endpoints: Prometheus /metrics
// and the liveness and readiness probes /healthz and /readyz. They live on a
// listener of their own (service usher { inet_listener metrics }) because the
// doveadm HTTP API must answer 404 for any path it does not know, before
// authentication, exactly as Dovecot 2.3 does.
package metrics
