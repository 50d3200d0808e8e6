package login

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/usher-mail/usher/internal/relay"
)

// Proxied is a backend connection on which the client's user is logged in, ready to relay.
type Proxied struct {
	Info    SessionInfo // Start is filled in by Proxy
	Backend net.Conn
	OK      []string // the login answer for the client
	// Take hands over the pre-login readers (the client's, the backend's), which may hold
	// pipelined bytes, and makes the front-end drop its references: an idle session should
	// cost the kernel's socket buffers, not ours.
	Take func() (client, backend *bufio.Reader)
}

// Proxy registers the logged-in session and relays it until either side ends or it is kicked.
// It returns at once: the relay runs on an event loop (plain TCP) or its own goroutines (TLS),
// see package relay, and the connection is finished, and c.end called, when the session is
// over.
func (c *Conn) Proxy(env *Env, log *slog.Logger, p Proxied) {
	c.mu.Lock()
	if c.state != statePreLogin {
		// Shut down while the backend login was in progress.
		c.mu.Unlock()
		p.Backend.Close()
		c.over()
		return
	}
	c.state = stateProxying
	c.backend = p.Backend
	c.mu.Unlock()
	_ = c.Raw.SetDeadline(time.Time{})
	_ = c.NC.SetDeadline(time.Time{})

	start := time.Now()
	p.Info.Start = start
	done := env.Sessions.Register(p.Info, c.Kick)
	if err := c.Reply(p.OK...); err != nil {
		done(0, 0)
		c.over()
		return
	}

	cbuf, bbuf := p.Take()
	in0, out0 := relay.Handoff(c.NC, cbuf, p.Backend, bbuf)
	// Only a parting line is written from here on, without a buffer (see Reply).
	c.wmu.Lock()
	relay.ReleaseWriter(c.bw)
	c.bw = nil
	c.wmu.Unlock()

	// relay.Start calls this once, on an event loop or on the relay's goroutine.
	sess := relay.Start(c.NC, p.Backend, func(i, o int64) {
		if c.kicked() {
			// The parting line may wait for a slow client: not on the loop.
			go c.finishProxy(env, log, p.Info, start, done, in0+i, out0+o)
			return
		}
		c.finishProxy(env, log, p.Info, start, done, in0+i, out0+o)
	})
	c.mu.Lock()
	c.relay = sess
	kicked := c.kickReason != ""
	c.mu.Unlock()
	if kicked {
		sess.Kick() // a kick came before the relay was known to it
	}
}

// finishProxy ends a proxied session once its relay is over: the parting line after a kick,
// the registry, stats and log, and the connection itself.
func (c *Conn) finishProxy(env *Env, log *slog.Logger, info SessionInfo, start time.Time, done func(in, out int64), in, out int64) {
	c.mu.Lock()
	reason := c.kickReason
	c.mu.Unlock()
	if reason != "" {
		c.LastWord(reason)
	}
	d := time.Since(start)
	done(in, out)
	env.Stats.SessionFinished(info.Service, d, in, out)
	log.LogAttrs(context.Background(), slog.LevelInfo, "proxy session finished", slog.String("user", info.User),
		slog.Duration("duration", d), slog.Int64("in", in), slog.Int64("out", out), slog.String("kicked", reason))
	c.over()
}

func (c *Conn) kicked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kickReason != ""
}

// over finishes the connection and tells the connection set.
func (c *Conn) over() {
	c.Finish()
	if c.end != nil {
		c.end()
	}
}
