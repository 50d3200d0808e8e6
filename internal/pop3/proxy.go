package pop3

import (
	"time"

	"github.com/usher-mail/usher/internal/login"
)

// proxy registers the logged-in session and relays it until either side ends or it is kicked.
func (c *conn) proxy(bs *backendSession) {
	c.mu.Lock()
	if c.state != statePreLogin {
		// Shut down while the backend login was in progress.
		c.mu.Unlock()
		bs.conn.Close()
		return
	}
	c.state = stateProxying
	c.backend = bs.conn
	c.mu.Unlock()
	_ = c.raw.SetDeadline(noDeadline)
	_ = c.nc.SetDeadline(noDeadline)

	env := c.s.env
	start := time.Now()
	done := env.Sessions.Register(login.SessionInfo{
		ID: c.sessionID, Service: Service, User: bs.user,
		Client: c.remote, Local: c.local, Backend: bs.addr, Start: start,
	}, c.kick)
	if err := c.reply(bs.okLine); err != nil {
		done(0, 0)
		return
	}

	// Commands the client pipelined behind its login, and whatever the backend sent behind
	// its +OK, are still in our buffers: they go first.
	var in, out int64
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		m, _ := bs.conn.Write(b)
		in += int64(m)
	}
	if n := bs.br.Buffered(); n > 0 {
		b, _ := bs.br.Peek(n)
		m, _ := c.nc.Write(b)
		out += int64(m)
	}
	i, o := login.Relay(c.nc, bs.conn)
	in, out = in+i, out+o

	c.mu.Lock()
	reason := c.kickReason
	c.mu.Unlock()
	if reason != "" {
		c.lastWord(reason)
	}
	d := time.Since(start)
	done(in, out)
	env.Stats.SessionFinished(Service, d, in, out)
	c.log.Info("proxy session finished", "user", bs.user, "duration", d, "in", in, "out", out,
		"kicked", reason)
}
