package login

import (
	"bytes"
	"net/netip"
)

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
