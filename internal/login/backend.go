package login

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

	"github.com/usher-mail/usher/internal/netx"
	"github.com/usher-mail/usher/internal/relay"
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
	User string         // the login user (Creds.LoginUser)
	Addr netip.AddrPort // the backend
}

// DialBackend connects to dest, starts TLS at once when ssl (backend_ssl) is "yes", and runs
// a protocol's login dialogue on the stream, which is closed again unless the login
// succeeded. The dialogue runs under ctx's deadline and is to lift it once logged in.
func DialBackend(ctx context.Context, dest netip.AddrPort, ssl string, base *tls.Config,
	dialogue func(nc net.Conn, br *bufio.Reader) (*Session, Result)) (*Session, Result) {
	var zero *Session
	raw, err := netx.BackendDialer().DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return zero, Result{Kind: ResultUnavailable, Err: fmt.Errorf("%w: %w", ErrConnect, err)}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
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
