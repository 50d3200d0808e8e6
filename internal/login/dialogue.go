package login

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// The generic part of a pre-login dialogue: login deadline, TLS, greeting, the command loop
// with its bounds, goodbyes on read errors, and SASL PLAIN/LOGIN. The protocol supplies only
// its words and encoding.

// Commands is a protocol's part of the pre-login dialogue that PreLogin drives. P is the raw
// form of one command as the protocol reads it.
type Commands[P any] struct {
	SetStream func(net.Conn) // installs the stream the protocol reads and writes (TLS or not)
	Greeting  func() []string
	// Read reads one command; an error ends the connection (see ReadFailed).
	Read func() (P, error)
	// Run parses and runs one command: the logged-in Session to relay, or whether to go on
	// reading commands; name is the command's, for the stats, "" when it did not parse (and
	// has been answered).
	Run func(P) (name string, s *Session, next bool)
}

// PreLogin runs c up to a successful login (its Session) or to its end (nil).
func PreLogin[P any](c *Conn, cfg *Config, env *Env, service string, d Commands[P]) *Session {
	_ = c.Raw.SetDeadline(time.Now().Add(cfg.LoginTimeout))
	if cfg.ImplicitTLS {
		if !c.StartTLS(cfg.TLS, "TLS", d.SetStream) {
			return nil
		}
	} else {
		d.SetStream(c.Raw)
	}
	if c.Reply(d.Greeting()...) != nil {
		return nil
	}
	for n := 1; ; n++ {
		p, err := d.Read()
		if err != nil {
			c.ReadFailed(err)
			return nil
		}
		// A client that talks without ever logging in only costs us: the login timeout
		// bounds its time, this bounds its work.
		if n > cfg.MaxCommands {
			c.LastWord("Too many commands before login.")
			return nil
		}
		start := time.Now()
		name, sess, next := d.Run(p)
		if name != "" {
			env.Stats.Command(service, name, time.Since(start))
		}
		if sess != nil {
			return sess
		}
		if !next {
			return nil
		}
	}
}

// PartingError is a read error that ends the connection with Text as its parting line.
type PartingError struct{ Text string }

func (e *PartingError) Error() string { return e.Text }

// ErrLineTooLong ends a connection whose line does not fit the buffer, in Dovecot's words.
var ErrLineTooLong = &PartingError{"Input buffer full, aborting"}

// ReadFailed says goodbye after a failed read where there are words for it.
func (c *Conn) ReadFailed(err error) {
	var pe *PartingError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		c.LastWord(pe.Text)
	case errors.As(err, &ne) && ne.Timeout() && c.PreLogin():
		c.LastWord("Disconnected for inactivity.")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.Log.Debug("read failed", "err", err)
	}
}

// SASL is how a protocol carries a SASL exchange: its continuation, its responses and its
// replies to a refused one.
type SASL struct {
	Challenge func(b64 string) error // sends a base64 challenge in the protocol's form
	// Read reads one response; when ok is false, reply is what to answer ("" when the
	// connection is gone).
	Read                           func() (text, reply string, ok bool)
	Aborted, BadBase64, AuthFailed string // replies to "*", to bad base64, to malformed credentials
	// Strings: responses are the protocol's strings (ManageSieve), in which "*" aborts only as
	// an answer to a challenge and "=" is not the empty response.
	Strings bool
}

// Authenticate collects credentials over SASL PLAIN or LOGIN (mech, upper case) with the
// initial response ir (nil: none). ok: log in with cr. Otherwise the exchange has been
// answered, and next says whether the connection goes on.
func (c *Conn) Authenticate(env *Env, mech string, ir *string, s SASL) (cr Creds, ok, next bool) {
	cr, reply, end := ReadCreds(mech, ir, s.ask)
	switch end {
	case SASLStopped:
		return cr, false, reply == "" || c.Reply(reply) == nil
	case SASLMalformed:
		env.FailedAttempt(c.Remote.Addr())
		return cr, false, c.Reply(s.AuthFailed) == nil
	}
	return cr, true, true
}

// ask gets one client response: the initial response ir when given, otherwise one read after
// the challenge.
func (s *SASL) ask(ir *string, challenge string) (resp []byte, reply string, ok bool) {
	var text string
	if ir != nil {
		text = *ir
	} else {
		if s.Challenge(base64.StdEncoding.EncodeToString([]byte(challenge))) != nil {
			return nil, "", false
		}
		if text, reply, ok = s.Read(); !ok {
			return nil, reply, false
		}
		if s.Strings && text == "*" {
			return nil, s.Aborted, false
		}
	}
	if !s.Strings {
		if text == "*" {
			return nil, s.Aborted, false
		}
		if text == "=" {
			return []byte{}, "", true
		}
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, s.BadBase64, false
	}
	return b, "", true
}

// SASLEnd says how a credentials exchange ended.
type SASLEnd int

const (
	SASLDone SASLEnd = iota // the credentials are complete
	// SASLStopped: a response was refused or the client has gone; answer the reply, if any.
	SASLStopped
	// SASLMalformed: PLAIN credentials not shaped authzid NUL user NUL pass. The client is
	// told its authentication failed, and it counts as a failed attempt (see FailedAttempt).
	SASLMalformed
)

// Ask gets one client response to challenge, or takes the initial response ir when given.
// When ok is false, reply is what to answer ("" when the connection is gone).
type Ask func(ir *string, challenge string) (resp []byte, reply string, ok bool)

// ReadCreds collects credentials over SASL PLAIN or LOGIN; mech is one of the two, upper case.
func ReadCreds(mech string, ir *string, ask Ask) (cr Creds, reply string, end SASLEnd) {
	cr.Mech = mech
	if mech == "PLAIN" {
		resp, reply, ok := ask(ir, "")
		if !ok {
			return cr, reply, SASLStopped
		}
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 {
			return cr, "", SASLMalformed
		}
		cr.Authz, cr.User, cr.Pass = string(parts[0]), string(parts[1]), string(parts[2])
		if cr.Authz == cr.User {
			cr.Authz = ""
		}
		return cr, "", SASLDone
	}
	user, reply, ok := ask(ir, "Username:")
	if !ok {
		return cr, reply, SASLStopped
	}
	pass, reply, ok := ask(nil, "Password:")
	if !ok {
		return cr, reply, SASLStopped
	}
	cr.User, cr.Pass = string(user), string(pass)
	return cr, "", SASLDone
}

// FailedAttempt counts a login that failed before any password check (malformed
// credentials, no user name) like a wrong password, so such clients are slowed down too.
func (e *Env) FailedAttempt(ip netip.Addr) {
	_, attempt := e.Penalties.Begin(ip)
	e.Penalties.Fail(ip, attempt, "", "")
}
