package login

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/relay"
	"github.com/usher-mail/usher/internal/tabescape"
)

// Session is a backend connection on which the client's user is logged in, and what the
// client is to be told: everything Serve needs to relay it.
type Session struct {
	Conn net.Conn      // the backend stream, TLS or not
	BR   *bufio.Reader // Conn's reader; may hold bytes the backend sent after its OK
	// OK are the lines that tell the client it is logged in.
	OK []string
	// Client is the client's pre-login reader, which may hold pipelined bytes: the front-end
	// hands it over with the session and drops its own reference.
	Client *bufio.Reader

	// Filled in by Login.
	User       string         // the login user (Creds.LoginUser, the passdb's user=)
	Addr       netip.AddrPort // the backend
	Route, Tag string         // the name the director hashed and its director_tag (SessionInfo)
}

// DialBackend connects to dest, sends header (a PROXY header, backend_proxy_protocol; nil:
// none), starts TLS at once when ssl (backend_ssl) is "yes", and runs a protocol's login
// dialogue on the stream, which is closed again unless the login succeeded. The dialogue runs
// under ctx's deadline and is to lift it once logged in.
func DialBackend(ctx context.Context, dest netip.AddrPort, ssl string, base *tls.Config, header []byte,
	dialogue func(nc net.Conn, br *bufio.Reader) (*Session, Result)) (*Session, Result) {
	var zero *Session
	ssl, base = TargetOf(ctx).BackendTLS(ssl, base)
	raw, err := netx.BackendDialer().DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return zero, Result{Kind: ResultUnavailable, Err: fmt.Errorf("%w: %w", ErrConnect, err)}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	if len(header) > 0 {
		if _, err := raw.Write(header); err != nil {
			raw.Close()
			return zero, Unavailable("PROXY header: %w", err)
		}
	}
	nc := raw
	if ssl == "yes" {
		if nc, err = ClientTLS(raw, base, dest); err != nil {
			raw.Close()
			return zero, Unavailable("TLS handshake: %w", err)
		}
	}
	s, res := dialogue(nc, relay.NewReader(nc))
	if res.Kind != ResultOK {
		raw.Close()
	}
	return s, res
}

// ClientTLS runs a TLS client handshake on nc with dest's backend. base (may be nil) is the
// configured client TLS; the server name defaults to dest's address, as Dovecot checks a
// backend's certificate against the host it connects to.
func ClientTLS(nc net.Conn, base *tls.Config, dest netip.AddrPort) (net.Conn, error) {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = dest.Addr().String()
	}
	tc := tls.Client(nc, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

// Reconnects and the "host is down" fast-fail of Dovecot's login proxy (reference 6.1): a
// backend login that fails for a reason worth another try is tried again 1 s later, at most
// MaxReconnects times and only while more than 1.1 s of the proxy timeout is left, so a
// backend restart costs its users a slower login instead of a failed one. A backend that has
// been refusing connections for longer than hostDownAfter since its last success, while other
// logins already wait on it, fails new logins at once instead of piling them up.

const (
	reconnectDelay = time.Second
	// reconnectMinLeft: no retry unless the proxy timeout leaves at least this much.
	reconnectMinLeft = reconnectDelay + 100*time.Millisecond
	// hostDownAfter is Dovecot's proxy_host_immediate_failure_after default.
	hostDownAfter = 30 * time.Second
)

// ErrConnect marks a Result whose TCP connect to the backend failed (as opposed to a failure
// after connecting); only those count against the backend in hostStates.
var ErrConnect = errors.New("connect")

// ErrHostDown is the fast-fail: not connected, not retried.
var ErrHostDown = errors.New("host is down")

// hostState is what Dovecot's login_proxy_state keeps per backend ip:port.
type hostState struct {
	lastSuccess, lastFailure time.Time
	waiting                  int // connects in progress
}

// hostStates is process-wide, like Dovecot's per login process: every front-end's
// connects to a backend tell the others whether it is up.
var hostStates = struct {
	sync.Mutex
	m map[netip.AddrPort]*hostState
}{m: map[netip.AddrPort]*hostState{}}

// beginConnect registers a connect to dest starting at now (started is when this login's
// first try began). It returns false, and registers nothing, when dest is down: its last
// failure is more than hostDownAfter past its last success and another connect is waiting.
func beginConnect(dest netip.AddrPort, now time.Time) bool {
	hostStates.Lock()
	defer hostStates.Unlock()
	st := hostStates.m[dest]
	if st == nil {
		if len(hostStates.m) >= maxHostStates {
			clear(hostStates.m) // a bound, never reached by a real cluster's backends
		}
		// A first connect: as if it had last succeeded a second ago.
		st = &hostState{lastSuccess: now.Add(-time.Second)}
		hostStates.m[dest] = st
	}
	if st.lastFailure.Sub(st.lastSuccess) > hostDownAfter && st.waiting > 0 {
		return false
	}
	st.waiting++
	return true
}

const maxHostStates = 4096

// endConnect records how a connect registered by beginConnect went. A failure does not mark
// the host failing when a connect succeeded since this login started: that was a one-off.
func endConnect(dest netip.AddrPort, started, now time.Time, connected bool) {
	hostStates.Lock()
	defer hostStates.Unlock()
	st := hostStates.m[dest]
	if st == nil {
		return
	}
	st.waiting--
	switch {
	case connected:
		st.lastSuccess = now
	case !started.Before(st.lastSuccess):
		st.lastFailure = now
	}
}

// retryable reports whether a backend result is worth another connect: connect, remote and
// protocol failures and a backend's own "temporarily unavailable", not the fast-fail nor a
// relayed exchange whose challenges the client has already seen.
func retryable(res Result) bool {
	return res.Kind == ResultUnavailable && !errors.Is(res.Err, ErrHostDown) && !errors.Is(res.Err, ErrRelayStarted)
}

// backendLogin runs f.Backend on dest with the reconnects described above. ok is false
// when the server started closing during a wait.
func backendLogin(ctx context.Context, env *Env, f Frontend, dest netip.AddrPort, log func() *slog.Logger) (s *Session, res Result, ok bool) {
	started := time.Now()
	for reconnects := 0; ; reconnects++ {
		if beginConnect(dest, time.Now()) {
			s, res = f.Backend(ctx, dest)
			connectFailed := res.Kind == ResultUnavailable && errors.Is(res.Err, ErrConnect)
			endConnect(dest, started, time.Now(), !connectFailed)
		} else {
			s, res = nil, Result{Kind: ResultUnavailable,
				Err: fmt.Errorf("%w: failing for over %v since its last success", ErrHostDown, hostDownAfter)}
		}
		if !retryable(res) || reconnects >= env.MaxReconnects || !timeLeft(ctx, reconnectMinLeft) {
			return s, res, true
		}
		log().Info("backend login failed, reconnecting", "err", res.Err, "reconnects", reconnects+1)
		if !f.Sleep(reconnectDelay) {
			return s, res, false
		}
	}
}

// timeLeft reports whether ctx's deadline is more than d away.
func timeLeft(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > d
}

// Forward fields (Dovecot's forward_*): "key=value" pairs a passdb returns as forward_key=value,
// or a trusted proxy in front of us passes on (IMAP ID x-forward-key, XCLIENT FORWARD=), which
// usher hands to the backend the same ways: x-forward-key in IMAP ID, FORWARD= in POP3 XCLIENT,
// XRCPTFORWARD= on an LMTP RCPT. The backend trusts them only from its login_trusted_networks.

// maxForward bounds the forward fields of one login (Dovecot's FORWARD= is effectively
// limited to about 1000 bytes).
const maxForward = 1024

// PassdbForward returns the passdb's forward fields of the login in ctx (its Target), bounded.
func PassdbForward(ctx context.Context) []string {
	if t := TargetOf(ctx); t != nil {
		return boundForward(t.Forward)
	}
	return nil
}

// ForwardFields are what a backend login passes on: the trusted client's fields with the
// passdb's on top (a passdb field replaces the client's field of the same key).
func (c *Conn) ForwardFields(ctx context.Context) []string {
	return MergeForward(c.Forward, PassdbForward(ctx))
}

// MergeForward returns base with over's fields added, an over field replacing base's field
// of the same key; the result is bounded by maxForward bytes.
func MergeForward(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(over))
	for _, f := range base {
		k, _, _ := strings.Cut(f, "=")
		if !hasForwardKey(over, k) {
			out = append(out, f)
		}
	}
	return boundForward(append(out, over...))
}

func hasForwardKey(fields []string, key string) bool {
	for _, f := range fields {
		if k, _, _ := strings.Cut(f, "="); strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// boundForward drops the fields past maxForward bytes.
func boundForward(fields []string) []string {
	n := 0
	for i, f := range fields {
		if n += len(f) + 1; n > maxForward {
			return fields[:i]
		}
	}
	return fields
}

// EncodeForward renders fields as Dovecot sends FORWARD= and XRCPTFORWARD=: base64 of the
// fields joined by TAB, each tab-escaped.
func EncodeForward(fields []string) string {
	return base64.StdEncoding.EncodeToString([]byte(tabescape.Join(fields...)))
}

// DecodeForward reads EncodeForward's form; fields without '=' are dropped.
func DecodeForward(s string) ([]string, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) > 4*maxForward {
		return nil, false
	}
	var out []string
	for _, f := range tabescape.Split(string(raw)) {
		if k, _, ok := strings.Cut(f, "="); ok && k != "" {
			out = append(out, f)
		}
	}
	return boundForward(out), true
}
