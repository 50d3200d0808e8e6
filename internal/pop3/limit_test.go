package pop3

import (
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
)

// TestConnectionCeiling: a client past the per-IP ceiling gets -ERR and is closed.
func TestConnectionCeiling(t *testing.T) {
	lim := &netx.Limiter{}
	lim.Set(netx.Limits{PerIP: 1})
	h := newHarness(t, Config{Config: login.Config{Limiter: lim}}, nil)
	h.dial().Expect(greeting)
	c := h.dial()
	c.Expect("-ERR [SYS/TEMP] Too many connections, try again later.")
	c.ExpectEOF()
}
