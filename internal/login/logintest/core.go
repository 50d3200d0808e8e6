package logintest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/netx"
)

// Running is a front-end started for a test, with its fakes.
type Running struct {
	Fakes
	Addr string
	Srv  interface{ Shutdown(context.Context) error }
}

// Dialect is what the tests of the shared core need to know of a protocol: how to start its
// front-end and the words of a short dialogue.
type Dialect struct {
	// Start runs the front-end with cfg (and a fake backend that takes user u1 with password
	// "pass") until the test ends.
	Start func(t *testing.T, cfg login.Config) Running
	// Greeting is the whole greeting of a fresh connection.
	Greeting []string
	// Login logs u1 in with password "pass"; LoggedIn is the answer.
	Login    string
	LoggedIn []string
	// Proxied is a command the backend answers once the user is logged in, with Answer.
	Proxied string
	Answer  []string
	// Noop is a pre-login command the front-end answers itself, n counting from 0, with the
	// line NoopOK returns.
	Noop   func(n int) string
	NoopOK func(n int) string
	// Last is the protocol's parting line with text.
	Last func(text string) string
	// Refused is the answer to a connection over a ceiling.
	Refused string
}

// RunCore tests what login's core does for every front-end, in d's words: kick, shutdown,
// the pre-login command and time bounds, the connection ceilings.
func RunCore(t *testing.T, d Dialect) {
	dial := func(r Running) *Client {
		c := Dial(t, r.Addr)
		c.Expect(d.Greeting...)
		return c
	}
	logIn := func(c *Client) {
		c.Send(d.Login)
		c.Expect(d.LoggedIn...)
	}

	t.Run("Kick", func(t *testing.T) {
		r := d.Start(t, login.Config{})
		c := dial(r)
		logIn(c)
		r.Sessions.KickAll("Kicked by admin.")
		c.Expect(d.Last("Kicked by admin."))
		c.ExpectEOF()
		WaitDone(t, r.Sessions, 0)
		if r.Stats.Count("session_finished") != 1 {
			t.Error("session_finished not counted")
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		r := d.Start(t, login.Config{})
		pre := dial(r)
		proxied := dial(r)
		logIn(proxied)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Srv.Shutdown(ctx) }()
		pre.Expect(d.Last(login.ShutdownText))
		pre.ExpectEOF()
		// The proxied session keeps working until the deadline.
		proxied.Send(d.Proxied)
		proxied.Expect(d.Answer...)
		cancel()
		proxied.Expect(d.Last(login.ShutdownText))
		proxied.ExpectEOF()
		if err := <-done; err != context.Canceled {
			t.Errorf("Shutdown = %v", err)
		}
		if nc, err := net.Dial("tcp", r.Addr); err == nil {
			nc.Close()
			t.Error("still accepting")
		}
	})

	t.Run("TooManyCommandsBeforeLogin", func(t *testing.T) {
		c := dial(d.Start(t, login.Config{MaxCommands: 3}))
		var pipelined strings.Builder
		for n := range 4 {
			pipelined.WriteString(d.Noop(n) + "\r\n")
		}
		if _, err := c.NC.Write([]byte(pipelined.String())); err != nil {
			t.Fatal(err)
		}
		c.Expect(d.NoopOK(0), d.NoopOK(1), d.NoopOK(2), d.Last("Too many commands before login."))
		c.ExpectEOF()
	})

	t.Run("LoginTimeout", func(t *testing.T) {
		// Long enough for the greeting to go out on a loaded machine (a deadline that passes
		// before it does ends the connection without a word), short enough for a quick test.
		c := dial(d.Start(t, login.Config{LoginTimeout: 300 * time.Millisecond}))
		c.Expect(d.Last("Disconnected for inactivity."))
		c.ExpectEOF()
	})

	t.Run("ConnectionCeiling", func(t *testing.T) {
		lim := &netx.Limiter{}
		lim.Set(netx.Limits{PerIP: 1})
		r := d.Start(t, login.Config{Limiter: lim})
		dial(r)
		c := Dial(t, r.Addr)
		c.Expect(d.Refused)
		c.ExpectEOF()
	})
}
