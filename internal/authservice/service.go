// Package authservice is a passdb.Authenticator that asks an existing Dovecot auth service,
// so a site's passdb drivers that usher cannot run itself (sql, ldap, lua, checkpassword,
// pam, ...) still decide usher's logins. Logins go over the auth-client protocol, as Dovecot's
// login processes send them (internal/authclient); lookups without a password (LMTP
// recipients) go over the auth-master protocol's PASS lookup, as Dovecot's lmtp does.
package authservice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/authclient"
	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/passdb"
)

const (
	// MaxInFlight bounds the requests waiting on the service at once; more wait for a slot
	// within their own deadline. Dovecot's auth service serves requests one passdb worker
	// at a time, so a burst queues there anyway; here it queues without holding sockets.
	MaxInFlight = 512
	// RequestTimeout bounds one request when the caller's context allows more: the
	// service's own failure delay (2 s by default) fits many times over.
	RequestTimeout = 30 * time.Second
	// dialTimeout bounds connecting and the handshake.
	dialTimeout = 5 * time.Second
	// redialAfter is how long a failed connect is reused as the answer, so a storm of
	// logins while the service is down does not become a storm of connects.
	redialAfter = time.Second
)

// ErrUnavailable wraps every failure to get an answer from the service: the login is a
// temporary failure, never a wrong password.
var ErrUnavailable = errors.New("auth service unavailable")

// Service asks one Dovecot auth service. It is safe for concurrent use.
type Service struct {
	client config.Endpoint
	master config.Endpoint // zero: no lookups without a password
	slots  chan struct{}
	pool   *authclient.Pool

	closed atomic.Bool

	mu        sync.Mutex
	dialErr   error // the last failed connect, reused until dialAgain
	dialAgain time.Time
	masters   *masterPool
}

// New returns a Service for the auth-client listener client and, if master is not the zero
// config.Endpoint, the auth-master (or auth-userdb) listener that answers lookups without a
// password. It connects on first use.
func New(client, master config.Endpoint) *Service {
	s := &Service{client: client, master: master, slots: make(chan struct{}, MaxInFlight),
		pool: authclient.NewPool(client.Network, client.Addr)}
	if master.Network != "" {
		s.masters = &masterPool{ep: master}
	}
	return s
}

// Client and Master are the endpoints the Service was made with.
func (s *Service) Client() config.Endpoint { return s.client }
func (s *Service) Master() config.Endpoint { return s.master }

// Close ends the connections; requests waiting on them, and later ones, fail as
// unavailable.
func (s *Service) Close() {
	s.closed.Store(true)
	s.pool.Close()
	if s.masters != nil {
		s.masters.close()
	}
}

// Authenticate asks the service about req: a login (req.Mech set) over the auth-client
// protocol, a lookup without a password (req.Mech empty: LMTP) over the auth-master one. A
// service that cannot be reached or does not answer in time is an error wrapping
// ErrUnavailable, with Reply.Temp set: a temporary failure, not a wrong password.
func (s *Service) Authenticate(ctx context.Context, req passdb.Request) (passdb.Reply, error) {
	if s.closed.Load() {
		return unavailable(errors.New("closed (usher_auth_service changed)"))
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return unavailable(fmt.Errorf("%d requests in flight: %w", MaxInFlight, ctx.Err()))
	}
	if req.Mech == "" {
		return s.lookup(ctx, req)
	}
	return s.login(ctx, req)
}

func unavailable(err error) (passdb.Reply, error) {
	return passdb.Reply{Temp: true}, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// login checks the cleartext credentials with PLAIN (one round, the initial response), or
// with LOGIN's two rounds if the service does not offer PLAIN.
func (s *Service) login(ctx context.Context, req passdb.Request) (passdb.Reply, error) {
	if strings.ContainsRune(req.User, 0) || strings.ContainsRune(req.Authz, 0) || strings.ContainsRune(req.Pass, 0) {
		return passdb.Reply{}, nil // PLAIN cannot carry them; no user has such a name
	}
	c, err := s.clientConn(ctx)
	if err != nil {
		return unavailable(err)
	}
	// no-penalty: usher's own penalties (the same anvil rules, per client IP) delay the
	// client; the service's on top would double every delay.
	ar := authclient.Request{Mech: "PLAIN", Service: req.Service, Secured: req.Secured, Session: req.Session, NoPenalty: true,
		LocalIP: req.Local.Addr(), LocalPort: req.Local.Port(), RemoteIP: req.Remote.Addr(), RemotePort: req.Remote.Port()}
	var rounds [][]byte
	if c.HasMech("PLAIN") {
		// the authorization identity too, so the service decides on it as it would for its
		// own login processes (refused unless a master passdb lets User log in as Authz)
		ar.Initial, ar.HasInitial = []byte(req.Authz+"\x00"+req.User+"\x00"+req.Pass), true
	} else if c.HasMech("LOGIN") && req.Authz == "" {
		ar.Mech, rounds = "LOGIN", [][]byte{[]byte(req.User), []byte(req.Pass)}
	} else {
		return unavailable(errors.New("the service offers neither PLAIN nor LOGIN (auth_mechanisms), " +
			"or only LOGIN, which cannot carry an authorization identity"))
	}
	e, r, err := c.Start(ctx, ar)
	for err == nil && r.Kind == authclient.Cont && len(rounds) > 0 {
		r, err = e.Continue(ctx, rounds[0])
		rounds = rounds[1:]
	}
	if err != nil {
		if e != nil {
			e.Cancel()
		}
		return unavailable(err)
	}
	if r.Kind == authclient.Cont {
		e.Cancel()
		return unavailable(fmt.Errorf("%s: the service asked for more than a user and a password", ar.Mech))
	}
	return clientReply(r), nil
}

// clientConn is the pool's connection, or the last connect's error while it is fresh.
func (s *Service) clientConn(ctx context.Context) (*authclient.Client, error) {
	s.mu.Lock()
	if s.dialErr != nil && time.Now().Before(s.dialAgain) {
		err := s.dialErr
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := s.pool.Client(dctx)
	if err == nil && s.closed.Load() {
		s.pool.Close() // dialled while Close ran: leave nothing open
	}
	s.mu.Lock()
	s.dialErr, s.dialAgain = err, time.Now().Add(redialAfter)
	s.mu.Unlock()
	return c, err
}

// clientReply turns an OK or FAIL into a passdb.Reply: user= is the settled name, a FAIL's
// reason= is the text for the client, code=temp_fail (or temp) makes it temporary, and every
// field but user is passed on raw for the front-ends to honour (proxy, host, port, nologin,
// a FAIL's code=authz_fail, user_disabled, pass_expired, ...).
func clientReply(r authclient.Reply) passdb.Reply {
	out := passdb.Reply{OK: r.Kind == authclient.OK}
	for _, f := range r.Fields {
		switch f.Key {
		case "user":
			out.User = f.Value
			continue
		case "temp": // what Dovecot's own client library says when the connection died
			out.Temp = !out.OK
		case "code": // Dovecot 2.3's auth service says an internal failure so
			if f.Value == "temp_fail" {
				out.Temp = !out.OK
			}
		case "reason":
			if !out.OK {
				out.Reason = f.Value
			}
		}
		out.Fields = append(out.Fields, rawField(f.Key, f.Value, f.HasValue))
	}
	return out
}

func rawField(k, v string, hasValue bool) string {
	if !hasValue {
		return k
	}
	return k + "=" + v
}
