package pop3

import (
	"bufio"
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

	in, out := login.Handoff(c.nc, c.br, bs.conn, bs.br)
	c.dropBuffers(bs)
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

// dropBuffers lets the pre-login buffers go once their bytes are passed on:
// the relay needs none of them, and an idle session should cost the kernel's
// socket buffers, not ours. A small writer stays for the last -ERR.
func (c *conn) dropBuffers(bs *backendSession) {
	bs.br = nil
	c.br = nil
	c.wmu.Lock()
	c.bw = bufio.NewWriterSize(c.nc, 16)
	c.wmu.Unlock()
}
