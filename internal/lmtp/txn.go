package lmtp

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/passdb"
)

// txn is one mail transaction, from MAIL FROM to the replies after the data (or RSET).
type txn struct {
	from     string // reverse path without brackets
	body     string // BODY= value, "" when not given
	rcpts    []*recipient
	backends map[backendKey]*backend
	order    []*backend // in first-use order, so backends are handled deterministically

	rcptTries   int   // RCPT commands taken, accepted or not
	dataStarted bool  // DATA sent to the backends (DATA or first BDAT)
	size        int64 // message bytes received so far
	tooBig      bool
}

// recipient is an accepted RCPT: its backend said 2xx to it.
type recipient struct {
	path  string
	sent  string // the path the backend got: destuser= or user= rewrite it
	user  string
	be    *backend
	reply []string // the backend's reply after the data; nil: none came
	done  func(in, out int64)
	start time.Time
}

func (c *conn) proxyFailed(reason string) string {
	return "451 4.4.0 Proxy failed (" + reason + ", session=" + c.sessionID + ")"
}

func (c *conn) cmdMail(cmd *command) {
	if c.tx != nil {
		c.reply("503 5.5.0 MAIL already given")
		return
	}
	tx := &txn{from: cmd.path, backends: map[backendKey]*backend{}}
	for k, v := range cmd.params {
		switch k {
		case "BODY":
			v = strings.ToUpper(v)
			if v != "7BIT" && v != "8BITMIME" {
				c.reply("501 5.5.4 Unsupported BODY parameter")
				return
			}
			tx.body = v
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || c.s.cfg.MaxMessageSize < 0 {
				c.reply("501 5.5.4 Invalid SIZE parameter")
				return
			}
			if n > c.s.cfg.MaxMessageSize {
				c.reply(msgTooBig)
				return
			}
		default:
			c.reply("555 5.5.4 Unsupported parameters")
			return
		}
	}
	c.mu.Lock()
	c.open = true
	c.mu.Unlock()
	c.tx = tx
	c.reply("250 2.1.0 OK")
}

const msgTooBig = "552 5.2.3 Message size exceeds administrative limit"

func (c *conn) cmdRcpt(cmd *command) {
	tx := c.tx
	switch {
	case tx == nil:
		c.reply("503 5.5.0 MAIL needed first")
		return
	case tx.dataStarted:
		c.reply("503 5.5.0 Bad sequence of commands")
		return
	case len(cmd.params) > 0:
		c.reply("555 5.5.4 Unsupported parameters")
		return
	case tx.rcptTries >= c.s.cfg.MaxRecipients:
		c.reply("452 4.5.3 Too many recipients")
		return
	}
	tx.rcptTries++
	cfg := &c.s.cfg
	user, err := userFor(cfg.UsernameFormat, cfg.RecipientDelimiter, cmd.path)
	if err != nil || user == "" {
		c.log.Error("cannot make a user name from a recipient", "err", err)
		c.reply("451 4.3.0 Temporary user lookup failure")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ProxyTimeout)
	defer cancel()
	t, ok := c.lookup(ctx, cmd.path, user)
	if !ok {
		return
	}
	if t.ProxyTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.ProxyTimeout)
		defer cancel()
	}
	ip, confirm, err := t.Route(ctx, c.s.env.Router)
	if err != nil {
		c.log.Warn("routing failed", "user", t.User, "err", err)
		c.reply("451 4.3.0 Temporary user lookup failure")
		return
	}
	// A new user's backend is recorded once the backend accepted the recipient.
	accepted := false
	defer func() { confirm(accepted) }()
	ssl, _ := t.BackendTLS("no", nil)
	key := backendKey{addr: netip.AddrPortFrom(ip.Unmap(), uint16(t.Port(cfg.BackendPort, 0))),
		ssl: ssl, anyCert: t.AnyCert, notTrusted: t.NotTrusted}
	dest := key.addr
	if dest == c.local {
		c.reply("554 5.4.6 Proxying loops to itself")
		return
	}
	b := tx.backends[key]
	if b == nil {
		b = c.openBackend(ctx, key, tx)
		tx.backends[key] = b
		tx.order = append(tx.order, b)
	}
	if !b.ok() {
		c.reply(b.failedReply(c)...)
		return
	}
	// destuser= or user= rewrite the recipient, as Dovecot's LMTP proxy does.
	path := cmd.path
	if t.DestUser != "" {
		path = t.DestUser
	} else if t.User != user {
		path = t.User
	}
	rcpt := "RCPT TO:<" + path + ">"
	if _, ok := b.caps["XRCPTFORWARD"]; ok && !t.NotTrusted {
		// the passdb's forward_* fields, as Dovecot's LMTP proxy passes them on
		if fwd := login.MergeForward(nil, t.Forward); len(fwd) > 0 {
			rcpt += " XRCPTFORWARD=" + login.EncodeForward(fwd)
		}
	}
	rep, err := b.command(rcpt)
	if err != nil {
		b.fail(err)
		c.reply(b.failedReply(c)...)
		return
	}
	if rep.code/100 != 2 {
		c.reply(rep.lines...)
		return
	}
	accepted = true
	r := &recipient{path: cmd.path, sent: path, user: t.User, be: b, start: time.Now()}
	// One session per delivery and user, without a client IP: what Dovecot's anvil shows as
	// lmtp/<user>. It makes the delivery visible to who and to the director's kicks, so a
	// user being moved gets no mail written on the old backend after the move.
	r.done = c.s.env.Sessions.Register(login.SessionInfo{
		ID: c.sessionID, Service: Service, User: t.User, Route: t.RouteName(), Tag: t.DirectorTag,
		Local: c.local, Backend: dest, Start: r.start,
	}, func(string) { b.kick() })
	b.rcpts = append(b.rcpts, r)
	tx.rcpts = append(tx.rcpts, r)
	c.reply(rep.lines...)
}

// endTx closes the transaction's backends (politely when they are between commands) and ends
// its sessions. Recipients that got no 250 were not acknowledged, so nothing is lost.
func (c *conn) endTx() {
	tx := c.tx
	if tx == nil {
		return
	}
	c.tx = nil
	c.mu.Lock()
	keep := !c.draining && !c.aborted
	c.mu.Unlock()
	for _, b := range tx.order {
		if keep && b.dataDone && b.ok() && !b.kicked.Load() {
			c.keepSpare(b)
			continue
		}
		b.close(!tx.dataStarted || b.dataDone)
	}
	for _, r := range tx.rcpts {
		var in int64
		if len(r.reply) > 0 && strings.HasPrefix(r.reply[0], "2") {
			in = tx.size
		}
		r.done(in, 0)
		c.s.env.Stats.SessionFinished(Service, time.Since(r.start), in, 0)
	}
	c.mu.Lock()
	c.open = false
	c.mu.Unlock()
}

// keepSpare keeps a backend connection that finished its transaction cleanly for the client's
// next transaction. Between transactions it carries no session: nothing is being delivered.
func (c *conn) keepSpare(b *backend) {
	b.rcpts, b.dataDone, b.dw = nil, false, dotWriter{w: b.bw}
	if old := c.spare[b.key]; old != nil {
		old.close(true)
	}
	c.spare[b.key] = b
}

// closeSpares says goodbye to the kept backend connections.
func (c *conn) closeSpares() {
	for k, b := range c.spare {
		b.close(true)
		delete(c.spare, k)
	}
}

// lookup asks the passdb about a recipient's user, as Dovecot's LMTP proxy does for every
// RCPT, and answers the recipient itself when the delivery cannot go on: an unknown user,
// a passdb failure, a reply that would not be proxied. nologin is for logins, not mail.
func (c *conn) lookup(ctx context.Context, path, user string) (*login.Target, bool) {
	rep, err := c.s.env.Passdb.Authenticate(ctx, passdb.Request{
		Service: Service, User: user, Local: c.local, Remote: c.remote, Session: c.sessionID,
	})
	t, verdict, why := login.ReadReply(rep, err, user)
	if verdict == login.NoLogin {
		verdict = login.Proxy
		if !t.Proxy && !t.ProxyMaybe {
			verdict, why = login.Misconfig, login.ErrNoProxy
		}
	}
	switch verdict {
	case login.Proxy:
		return &t, true
	case login.AuthFailed:
		c.reply("550 5.1.1 <" + path + "> User doesn't exist: " + path)
	case login.Misconfig:
		c.log.Error("passdb reply not usable", "user", user, "err", why)
		c.reply("451 4.3.0 Temporary user lookup failure")
	default:
		c.log.Warn("passdb lookup failed", "user", user, "err", why)
		c.reply("451 4.3.0 Temporary user lookup failure")
	}
	return nil, false
}
