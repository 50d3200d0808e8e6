package logintest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
)

// BackendEnv returns an Env whose router sends every user to backend, the one backend the
// front-ends ask for their SASL mechanisms, and its fakes.
func BackendEnv(backend netip.Addr) (*login.Env, Fakes) {
	env, r, p, s, st := Env(backend)
	env.Backends = func() []netip.Addr { return []netip.Addr{backend} }
	return env, Fakes{Router: r, Pen: p, Sessions: s, Stats: st}
}

// WaitOffered waits until m offers mech, learned from the backends.
func WaitOffered(t testing.TB, m *login.Mechs, mech string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !m.Offers(mech) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not learned from the backends", mech)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
