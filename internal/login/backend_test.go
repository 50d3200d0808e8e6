package login

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/passdb"
)

type fixedRouter netip.Addr

func (r fixedRouter) Route(context.Context, string) (netip.Addr, error) { return netip.Addr(r), nil }
func (fixedRouter) Confirm(string, netip.Addr, bool)                    {}

var testTexts = &Texts{AuthFailed: "AUTHFAILED", Config: "CONFIG", Unavailable: "UNAVAILABLE",
	TempFail: func(d string) string { return "TEMPFAIL " + d }, UserIPLimit: func(int) string { return "LIMIT" }}

// scripted runs Login against a backend that answers results in turn (the last one
// repeating); it returns the client's answer, the backend calls and the waits asked for.
func scripted(t *testing.T, env *Env, port int, results ...Result) (answer string, calls int, sleeps []time.Duration) {
	t.Helper()
	f := Frontend{
		Texts:  testTexts,
		Sleep:  func(d time.Duration) bool { sleeps = append(sleeps, d); return true },
		Answer: func(line string) error { answer = line; return nil },
		Backend: func(ctx context.Context, dest netip.AddrPort) (*Session, Result) {
			r := results[min(calls, len(results)-1)]
			calls++
			return &Session{}, r
		},
	}
	a := Attempt{Creds: Creds{User: "u", Pass: "p"}, Service: "imap", Client: netip.MustParseAddr("192.0.2.1"),
		TTL: ProxyTTL, BackendPort: port, Log: env.Logger}
	if s, _ := Login(env, a, f); s != nil {
		answer = fmt.Sprintf("OK after %d", calls)
	}
	return answer, calls, sleeps
}

func testEnv(reconnects int, timeout time.Duration) *Env {
	return (&Env{Router: fixedRouter(netip.MustParseAddr("192.0.2.10")), MaxReconnects: reconnects,
		ProxyTimeout: timeout}).WithDefaults()
}

var nextTestPort = 40000

// port gives each case its own backend ip:port, so host states do not mix.
func port() int { nextTestPort++; return nextTestPort }

func TestReconnects(t *testing.T) {
	refused := Result{Kind: ResultUnavailable, Err: fmt.Errorf("%w: refused", ErrConnect)}
	badBanner := Unavailable("bad banner")
	tempfail := Result{Kind: ResultUnavailable, Text: "NO [UNAVAILABLE] Internal error", Err: fmt.Errorf("backend")}
	ok := Result{Kind: ResultOK}
	sec := time.Second
	for _, c := range []struct {
		name       string
		env        *Env
		results    []Result
		answer     string
		calls      int
		reconnects int
	}{
		{"back after two refusals", testEnv(3, 30*sec), []Result{refused, refused, ok}, "OK after 3", 3, 2},
		{"protocol failure then ok", testEnv(3, 30*sec), []Result{badBanner, ok}, "OK after 2", 2, 1},
		{"backend tempfail then ok", testEnv(3, 30*sec), []Result{tempfail, ok}, "OK after 2", 2, 1},
		{"refused throughout", testEnv(3, 30*sec), []Result{refused}, "UNAVAILABLE", 4, 3},
		{"backend tempfail throughout is passed on", testEnv(3, 30*sec), []Result{tempfail}, "NO [UNAVAILABLE] Internal error", 4, 3},
		{"no reconnects configured", testEnv(0, 30*sec), []Result{refused, ok}, "UNAVAILABLE", 1, 0},
		{"less than 1.1 s of the timeout left", testEnv(3, sec), []Result{refused, ok}, "UNAVAILABLE", 1, 0},
		{"auth failure is final", testEnv(3, 30*sec), []Result{{Kind: ResultAuthFailed}, ok}, "AUTHFAILED", 1, 0},
		{"forwarded refusal is final", testEnv(3, 30*sec), []Result{{Kind: ResultForward, Text: "NO [X] y"}, ok}, "NO [X] y", 1, 0},
		{"config failure is final", testEnv(3, 30*sec), []Result{{Kind: ResultConfig}, ok}, "CONFIG", 1, 0},
	} {
		answer, calls, sleeps := scripted(t, c.env, port(), c.results...)
		if answer != c.answer || calls != c.calls || len(sleeps) != c.reconnects {
			t.Errorf("%s: answer %q after %d tries, waits %v; want %q after %d tries, %d reconnects",
				c.name, answer, calls, sleeps, c.answer, c.calls, c.reconnects)
		}
		for _, d := range sleeps {
			if d != reconnectDelay {
				t.Errorf("%s: waited %v between tries, want %v", c.name, d, reconnectDelay)
			}
		}
	}
}

// A backend that has refused connections for more than 30 s since its last success, with a
// connect already waiting on it, fails new logins without a connect and without reconnects.
func TestHostDownFastFail(t *testing.T) {
	p := port()
	dest := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), uint16(p))
	now := time.Now()
	begun := now.Add(-time.Minute)
	if !beginConnect(dest, begun) {
		t.Fatal("first connect refused")
	}
	endConnect(dest, begun, begun, true) // last success a minute ago
	if !beginConnect(dest, now) {
		t.Fatal("a connect to a host that just worked refused")
	}
	endConnect(dest, now, now, false) // failing for a minute now
	// no other connect waiting: this one still tries
	if answer, calls, _ := scripted(t, testEnv(0, 30*time.Second), p, Result{Kind: ResultUnavailable, Err: ErrConnect}); calls != 1 || answer != "UNAVAILABLE" {
		t.Fatalf("lone connect to a down host: %d tries, %q", calls, answer)
	}
	if !beginConnect(dest, now) { // another login's connect, hanging
		t.Fatal("waiting connect refused")
	}
	answer, calls, sleeps := scripted(t, testEnv(3, 30*time.Second), p, Result{Kind: ResultOK})
	if calls != 0 || len(sleeps) != 0 || answer != "UNAVAILABLE" {
		t.Fatalf("down host: %d tries, waits %v, answer %q; want an immediate UNAVAILABLE", calls, sleeps, answer)
	}
	endConnect(dest, now, time.Now(), true) // the hanging connect got through: up again
	if answer, calls, _ := scripted(t, testEnv(3, 30*time.Second), p, Result{Kind: ResultOK}); calls != 1 || answer != "OK after 1" {
		t.Fatalf("host up again: %d tries, %q", calls, answer)
	}
}

// A connect failure right after another login's success is a one-off: it does not start the
// host's down time.
func TestConnectFailureAfterSuccessIsOneOff(t *testing.T) {
	dest := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), uint16(port()))
	t0 := time.Now().Add(-time.Minute)
	beginConnect(dest, t0)
	beginConnect(dest, t0)
	endConnect(dest, t0, t0.Add(time.Second), true)
	endConnect(dest, t0, t0.Add(2*time.Second), false)
	hostStates.Lock()
	st := *hostStates.m[dest]
	hostStates.Unlock()
	if !st.lastFailure.IsZero() || st.waiting != 0 {
		t.Fatalf("state %+v: want no failure recorded and nothing waiting", st)
	}
}

type deadlineRouter struct {
	fixedRouter
	left *time.Duration
}

func (r deadlineRouter) Route(ctx context.Context, user string) (netip.Addr, error) {
	d, _ := ctx.Deadline()
	*r.left = time.Until(d)
	return r.fixedRouter.Route(ctx, user)
}

// fieldsPassdb accepts every login with its fields.
type fieldsPassdb []string

func (f fieldsPassdb) Authenticate(context.Context, passdb.Request) (passdb.Reply, error) {
	return passdb.Reply{OK: true, Fields: f}, nil
}

// A passdb's proxy_timeout bounds the backend login only: the director's queue keeps
// login_proxy_timeout (here two minutes against the passdb's second).
func TestProxyTimeoutSparesRoute(t *testing.T) {
	var routeLeft, backendLeft time.Duration
	env := testEnv(0, 2*time.Minute)
	env.Router = deadlineRouter{fixedRouter(netip.MustParseAddr("192.0.2.10")), &routeLeft}
	env.Passdb = fieldsPassdb{"proxy", "proxy_timeout=1"}
	f := Frontend{
		Texts:  testTexts,
		Sleep:  func(time.Duration) bool { return true },
		Answer: func(string) error { return nil },
		Backend: func(ctx context.Context, _ netip.AddrPort) (*Session, Result) {
			d, _ := ctx.Deadline()
			backendLeft = time.Until(d)
			return &Session{}, Result{Kind: ResultOK}
		},
	}
	a := Attempt{Creds: Creds{User: "u", Pass: "p"}, Service: "imap", Client: netip.MustParseAddr("192.0.2.1"),
		TTL: ProxyTTL, BackendPort: port(), Log: env.Logger}
	if s, _ := Login(env, a, f); s == nil {
		t.Fatal("login failed")
	}
	if routeLeft < time.Minute || backendLeft > time.Second {
		t.Errorf("route had %v, backend %v; want login_proxy_timeout for the route, proxy_timeout for the backend",
			routeLeft, backendLeft)
	}
}

type recordingPassdb struct{ got *passdb.Request }

func (p recordingPassdb) Authenticate(_ context.Context, r passdb.Request) (passdb.Reply, error) {
	*p.got = r
	return passdb.Reply{}, nil
}

// The passdb sees the SASL authorization identity beside the authentication one.
func TestPassdbSeesAuthz(t *testing.T) {
	var got passdb.Request
	env := testEnv(0, time.Minute)
	env.Passdb = recordingPassdb{&got}
	f := Frontend{Texts: testTexts, Sleep: func(time.Duration) bool { return true }, Answer: func(string) error { return nil }}
	a := Attempt{Creds: Creds{Mech: "PLAIN", Authz: "alice", User: "admin", Pass: "p"}, Service: "imap",
		Client: netip.MustParseAddr("192.0.2.1"), TTL: ProxyTTL, BackendPort: port(), Log: env.Logger}
	Login(env, a, f)
	if got.Authz != "alice" || got.User != "admin" {
		t.Errorf("passdb got authz %q user %q", got.Authz, got.User)
	}
}

// A session carries the name the director hashed (destuser) for the mapping it keeps alive,
// beside the login's user for who and kicks.
func TestSessionRouteName(t *testing.T) {
	env := testEnv(0, time.Minute)
	env.Passdb = fieldsPassdb{"proxy", "destuser=real"}
	f := Frontend{Texts: testTexts, Sleep: func(time.Duration) bool { return true }, Answer: func(string) error { return nil },
		Backend: func(context.Context, netip.AddrPort) (*Session, Result) { return &Session{}, Result{Kind: ResultOK} }}
	a := Attempt{Creds: Creds{User: "u", Pass: "p"}, Service: "imap", Client: netip.MustParseAddr("192.0.2.1"),
		TTL: ProxyTTL, BackendPort: port(), Log: env.Logger}
	s, _ := Login(env, a, f)
	if s == nil || s.User != "u" || s.Route != "real" || s.Tag != "" {
		t.Fatalf("session %+v, want user u, route real", s)
	}
}
