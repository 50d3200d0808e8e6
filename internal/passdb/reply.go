package passdb

import (
	"context"
	"net/netip"
)

// Request is one login as a passdb sees it: what Dovecot's login process tells its auth
// service (service, the client's and the listener's addresses, whether the connection is
// secured) and the credentials of a cleartext mechanism.
type Request struct {
	Service string // "imap", "pop3", "sieve", "lmtp"
	User    string // as the client gave it (its SASL authentication identity)
	// Authz is the SASL authorization identity when it differs from User (a master user
	// logging in as Authz); "" otherwise.
	Authz   string
	Pass    string // cleartext password; "" for a lookup without one (LMTP)
	Mech    string // SASL mechanism ("PLAIN", "LOGIN"); "" for a lookup
	Local   netip.AddrPort
	Remote  netip.AddrPort
	Secured bool   // TLS, or a trusted network
	Session string // the front-end's session id, for the auth service's logs
}

// Reply is a passdb's answer to a Request. OK false with Temp false is a wrong password or an
// unknown user (it counts toward the penalties); Temp is "cannot decide now".
type Reply struct {
	OK   bool
	Temp bool
	// User is the name the passdb settled on (a user= field, or the auth service's
	// rewrite); "" means the name as given. It is the name routed and logged in with.
	User string
	// Fields are the reply's extra fields, "key=value" or a bare "key", as the passdb
	// returned them (proxy, host, port, ssl, destuser, nologin, reason, forward_*, ...).
	Fields []string
	// Reason is the passdb's text for a refusal (a FAIL's reason=), shown to the client
	// where Dovecot shows it.
	Reason string
}

// Authenticator is a passdb as the login pipeline uses it: the built-in passwd-file and
// static drivers, or a Dovecot auth service asked over its auth-client protocol.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (Reply, error)
}
