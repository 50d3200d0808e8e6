package pop3

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/relay"
)

// maxBackendLine bounds one backend reply line before login.
const maxBackendLine = 64 << 10

// backendDialogue logs cr in on a backend stream the way Dovecot's pop3 proxy does: banner,
// optional STLS, XCLIENT with the client's address when the banner offers it, then USER/PASS
// (or AUTH PLAIN when the credentials cannot travel on a POP3 line, name a master user or the
// passdb asks for SASL). The passdb's fields (login.TargetOf) decide TLS, the credentials and
// whether XCLIENT is sent.
func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, cr login.Creds) (*login.Session, login.Result) {
	tg := login.TargetOf(ctx)
	cr = tg.Creds(cr)
	nc, br, res := c.backendHello(ctx, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	ask := func(line string) (string, error) { return askLine(nc, br, line) }
	var reply string
	var err error
	if usableOnLine(cr.User) && usableOnLine(cr.Pass) && cr.Authz == "" && !tg.SASL() {
		reply, err = ask("USER " + cr.User)
		if err == nil && strings.HasPrefix(reply, "+OK") {
			reply, err = ask("PASS " + cr.Pass)
		}
	} else {
		ir := base64.StdEncoding.EncodeToString([]byte(cr.Authz + "\x00" + cr.User + "\x00" + cr.Pass))
		reply, err = ask("AUTH PLAIN " + ir)
	}
	if err != nil {
		return nil, login.Unavailable("reading login reply: %w", err)
	}
	return loginReply(nc, br, dest, reply)
}

// askLine sends one command and returns the backend's one-line answer.
func askLine(nc net.Conn, br *bufio.Reader, line string) (string, error) {
	if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	return readLine(br, maxBackendLine)
}

// backendHello reads the backend's banner, runs STLS when backend_ssl (or the passdb's
// fields, login.TargetOf) says so and XCLIENT when the banner offers it and the backend is
// trusted with the client's address (a probe has no client: no XCLIENT); it returns the
// stream to log in on and a ResultOK.
func (c *conn) backendHello(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (net.Conn, *bufio.Reader, login.Result) {
	fail := func(res login.Result) (net.Conn, *bufio.Reader, login.Result) { return nil, nil, res }
	tg := login.TargetOf(ctx)
	ssl, tlsConf := tg.BackendTLS(c.s.cfg.BackendSSL, c.s.cfg.BackendTLS)
	banner, err := readLine(br, maxBackendLine)
	if err != nil {
		return fail(login.Unavailable("reading banner: %w", err))
	}
	if !strings.HasPrefix(banner, "+OK") {
		return fail(login.Unavailable("bad banner %q", banner))
	}
	if ssl == "starttls" {
		if line, err := askLine(nc, br, "STLS"); err != nil || !strings.HasPrefix(line, "+OK") {
			return fail(login.Unavailable("STLS refused: %q %v", line, err))
		}
		tc, err := login.ClientTLS(nc, tlsConf, dest)
		if err != nil {
			return fail(login.Unavailable("STLS handshake: %w", err))
		}
		nc, br = tc, relay.NewReader(tc)
	}
	if strings.HasPrefix(banner, "+OK [XCLIENT]") && tg.Trusted() && c.Remote.IsValid() {
		cmd := fmt.Sprintf("XCLIENT ADDR=%s PORT=%d SESSION=%s TTL=%d",
			c.Remote.Addr(), c.Remote.Port(), c.SessionID, c.TTL-1)
		if fwd := c.ForwardFields(ctx); len(fwd) > 0 {
			cmd += " FORWARD=" + login.EncodeForward(fwd)
		}
		line, err := askLine(nc, br, cmd)
		if err != nil || !strings.HasPrefix(line, "+OK") {
			return fail(login.Unavailable("XCLIENT refused: %q %v", line, err))
		}
	}
	return nc, br, login.Result{Kind: login.ResultOK}
}

// usableOnLine: USER and PASS take the rest of the line, so anything but line breaks and NUL
// goes through unchanged.
func usableOnLine(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\r\n\x00")
}

var noDeadline time.Time

// loginReply maps the backend's answer to the login (reference 6.3).
func loginReply(nc net.Conn, br *bufio.Reader, dest netip.AddrPort, reply string) (*login.Session, login.Result) {
	switch {
	case strings.HasPrefix(reply, "+OK"):
		_ = nc.SetDeadline(noDeadline)
		return &login.Session{Conn: nc, BR: br, OK: []string{reply}}, login.Result{Kind: login.ResultOK}
	case strings.HasPrefix(reply, "-ERR [AUTH]"), reply == "-ERR", strings.HasPrefix(reply, "-ERR ") && !strings.HasPrefix(reply, "-ERR ["):
		return nil, login.Result{Kind: login.ResultAuthFailed, Text: reply}
	case strings.HasPrefix(reply, "-ERR [SYS/TEMP]"):
		// retried like a connect failure, passed on once the reconnects are spent
		return nil, login.Result{Kind: login.ResultUnavailable, Text: reply, Err: fmt.Errorf("backend: %q", reply)}
	case strings.HasPrefix(reply, "-ERR ["):
		return nil, login.Result{Kind: login.ResultForward, Text: reply}
	}
	return nil, login.Result{Kind: login.ResultAuthFailed, Text: "-ERR Authentication failed."}
}
