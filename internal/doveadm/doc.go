// Package doveadm serves the doveadm HTTP API (/doveadm/v1) byte-compatible with Dovecot
// 2.3.19, except for the deliberate fixes of the reference's section 0 (always-valid JSON,
// in-band 64/75 errors where 2.3's doveadm-server died, keep-alive, constant-time
// credential checks, statsDump with `type`, statsReset).
//
// Layout: http.go is a small HTTP/1.x server on net.Conn (net/http cannot emit 2.3's reason
// phrases and header order); jsonlex.go and request.go are the streaming request grammar,
// running each command as soon as its closing ']' is parsed; registry.go and
// catalogue_gen.go hold the command table in 2.3's registration order; director*.go is a
// director-admin protocol client; sessions.go and misc_cmds.go implement who, kick, penalty,
// stats and the master commands over the Services interface (services.go).
package doveadm
