package login

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/usher-mail/usher/internal/sasl"
)

// SASL mechanisms usher relays without taking part (XOAUTH2, OAUTHBEARER, SCRAM-SHA-1,
// SCRAM-SHA-256): the name to route is read from the client's first message
// (internal/sasl), and everything after it is the backend's business. The backend's
// challenges go to the client and the client's answers to the backend, unchanged, until the
// backend's final answer, which the protocol's dialogue maps like a LOGIN's. The protocols'
// dialogues drive an Exchange; the front-ends only read client responses (Ask).

// relayedMechs maps each relayed mechanism to the reader of its user name, in the order
// they are advertised.
var relayedMechs = []struct {
	name string
	read func([]byte) (sasl.Name, error)
}{
	{"SCRAM-SHA-1", scram},
	{"SCRAM-SHA-256", scram},
	{"XOAUTH2", sasl.XOAUTH2},
	{"OAUTHBEARER", sasl.OAUTHBEARER},
}

func scram(msg []byte) (sasl.Name, error) { return sasl.SCRAM(msg, false) }

// IsRelayed reports whether mech (upper case) is a mechanism usher relays.
func IsRelayed(mech string) bool { return nameReader(mech) != nil }

func nameReader(mech string) func([]byte) (sasl.Name, error) {
	for _, m := range relayedMechs {
		if m.name == mech {
			return m.read
		}
	}
	return nil
}

// MaxSASLResponse bounds one SASL response a client sends after a challenge, in base64, where
// the protocol's command line is shorter (POP3, ManageSieve): an OAuth2 token can be several
// KiB. Dovecot's login processes take the same (LOGIN_MAX_AUTH_BUF_SIZE).
const MaxSASLResponse = 8 << 10

// MaxRelayRounds bounds the challenges of one relayed exchange. SCRAM takes two (server-first
// and server-final), an OAuth2 error one; a backend asking more is not one of these.
const MaxRelayRounds = 8

// ErrRelayStarted marks a failed backend login whose exchange has already reached the client:
// the client has seen a challenge of this backend, so the login cannot move to another
// connection (no reconnect).
var ErrRelayStarted = errors.New("relayed exchange already under way")

// Exchange is one relayed SASL exchange: the client's first message, and the way to the
// client for the rounds the backend asks for.
type Exchange struct {
	Mech  string
	First []byte // the client's first message, decoded
	ask   Ask
	reply func(line string) error // answers the client as it is (the line has its tag)
	// rounds is how many challenges reached the client; after the first, a failure cannot
	// be retried on another backend connection.
	rounds int
}

// StartRelay reads the first message of relayed mechanism mech (its initial response ir, or
// the answer to an empty challenge) and the user it names. The credentials carry the
// exchange (Creds.Relay) and no password; end is SASLMalformed when the message names no
// user the mechanism's way. reply writes a line to the client, for an exchange the client
// ends (Challenge).
func StartRelay(mech string, ir *string, ask Ask, reply func(line string) error) (cr Creds, stop string, end SASLEnd) {
	cr.Mech = mech
	read := nameReader(mech)
	if read == nil {
		return cr, "", SASLMalformed
	}
	first, stop, ok := ask(ir, "")
	if !ok {
		return cr, stop, SASLStopped
	}
	name, err := read(first)
	if err != nil {
		return cr, "", SASLMalformed
	}
	cr.User, cr.Authz = name.User, name.Authz
	cr.Relay = &Exchange{Mech: mech, First: first, ask: ask, reply: reply}
	return cr, "", SASLDone
}

// Challenge passes one backend challenge, in base64 as the protocols carry it, to the client
// and returns the client's answer in base64. When the client cancels, sends what is not a
// response or has gone, the exchange ends with the returned Result: ResultAnswered, the
// client told what its protocol says to a cancel or a bad response (Text, "" when it has
// gone).
func (x *Exchange) Challenge(b64 string) (string, *Result) {
	challenge, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		res := x.Unavailable("backend challenge not base64: %w", err)
		return "", &res
	}
	if x.rounds >= MaxRelayRounds {
		return "", &Result{Kind: ResultAuthFailed, Err: fmt.Errorf("%w: more than %d rounds", ErrRelayStarted, MaxRelayRounds)}
	}
	x.rounds++
	resp, stop, ok := x.ask(nil, string(challenge))
	if ok {
		return base64.StdEncoding.EncodeToString(resp), nil
	}
	res := &Result{Kind: ResultAnswered, Err: fmt.Errorf("%w: ended by the client", ErrRelayStarted)}
	if stop != "" && x.reply(stop) == nil {
		res.Text = stop
	}
	return "", res
}

// Unavailable is a backend failure during the exchange: retried like any other until the
// client has seen a challenge, after that final.
func (x *Exchange) Unavailable(format string, a ...any) Result {
	err := fmt.Errorf(format, a...)
	if x.rounds > 0 {
		err = fmt.Errorf("%w: %w", ErrRelayStarted, err)
	}
	return Result{Kind: ResultUnavailable, Err: err}
}
