package login

import (
	"bufio"
	"log/slog"
	"net"
	"time"
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
func (c *Conn) Proxy(env *Env, log *slog.Logger, p Proxied) {
	c.mu.Lock()
	if c.state != statePreLogin {
		// Shut down while the backend login was in progress.
		c.mu.Unlock()
		p.Backend.Close()
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
		return
	}

	cbuf, bbuf := p.Take()
	in, out := Handoff(c.NC, cbuf, p.Backend, bbuf)
	// A small writer stays for the last line after a kick.
	c.wmu.Lock()
	c.bw = bufio.NewWriterSize(c.NC, 16)
	c.wmu.Unlock()
	i, o := Relay(c.NC, p.Backend)
	in, out = in+i, out+o

	c.mu.Lock()
	reason := c.kickReason
	c.mu.Unlock()
	if reason != "" {
		c.LastWord(reason)
	}
	d := time.Since(start)
	done(in, out)
	env.Stats.SessionFinished(p.Info.Service, d, in, out)
	log.Info("proxy session finished", "user", p.Info.User, "duration", d, "in", in, "out", out,
		"kicked", reason)
}
