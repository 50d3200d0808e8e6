package sieve

import (
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
)

// TestConnectionCeiling: a client past the per-IP ceiling gets BYE and is closed.
func TestConnectionCeiling(t *testing.T) {
	lim := &netx.Limiter{}
	lim.Set(netx.Limits{PerIP: 1})
	h := newHarness(t, Config{Config: login.Config{Limiter: lim}}, nil)
	h.dial().Expect(caps("Dovecot ready.")...)
	c := h.dial()
	c.Expect(`BYE (TRYLATER) "Too many connections, try again later."`)
	c.ExpectEOF()
}
