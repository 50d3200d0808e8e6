package sieve

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/relay"
)

// maxBackendLine bounds one backend line before login.
const maxBackendLine = 64 << 10

func backendLine(br *bufio.Reader) (string, error) {
	r := reader{br: br}
	return r.readLine(maxBackendLine)
}

// readGreeting reads capability lines up to the OK that ends them and returns the
// capabilities: names (upper case) and values.
func readGreeting(br *bufio.Reader) (map[string]string, error) {
	caps := map[string]string{}
	for i := 0; i < 100; i++ {
		line, err := backendLine(br)
		if err != nil {
			return nil, err
		}
		if word, _, _ := strings.Cut(line, " "); strings.EqualFold(word, "OK") {
			return caps, nil
		}
		if !strings.HasPrefix(line, `"`) {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		if name, next, ok := quoted(line, 0); ok {
			val := ""
			if next+1 < len(line) && line[next] == ' ' {
				val, _, _ = quoted(line, next+1)
			}
			caps[strings.ToUpper(name)] = val
		}
	}
	return nil, errors.New("too many capability lines")
}

// backendDialogue logs cr in on a backend stream the way Pigeonhole's managesieve proxy does:
// greeting, optional STARTTLS, XCLIENT with the client's address when offered, then
// AUTHENTICATE "PLAIN" with an initial response.
func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, cr login.Creds) (*login.Session, login.Result) {
	cr = login.TargetOf(ctx).Creds(cr)
	nc, br, _, res := c.backendHello(ctx, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cr.Authz + "\x00" + cr.User + "\x00" + cr.Pass))
	reply, err := askLine(nc, br, `AUTHENTICATE "PLAIN" "`+ir+`"`)
	if err != nil {
		return nil, login.Unavailable("reading login reply: %w", err)
	}
	return loginReply(nc, reply, br)
}

// askLine sends one command and returns the backend's one-line answer.
func askLine(nc net.Conn, br *bufio.Reader, line string) (string, error) {
	if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	return backendLine(br)
}

// backendHello reads the backend's greeting, runs STARTTLS when backend_ssl (or the passdb's
// fields, login.TargetOf) says so and XCLIENT when offered and the backend is trusted with
// the client's address (not for a probe, which has no client); it returns the stream to log
// in on, the capabilities and a ResultOK.
func (c *conn) backendHello(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (net.Conn, *bufio.Reader, map[string]string, login.Result) {
	fail := func(res login.Result) (net.Conn, *bufio.Reader, map[string]string, login.Result) {
		return nil, nil, nil, res
	}
	tg := login.TargetOf(ctx)
	ssl, tlsConf := tg.BackendTLS(c.s.cfg.BackendSSL, c.s.cfg.BackendTLS)
	caps, err := readGreeting(br)
	if err != nil {
		return fail(login.Unavailable("reading greeting: %w", err))
	}
	if ssl == "starttls" {
		if _, ok := caps["STARTTLS"]; !ok {
			return fail(login.Result{Kind: login.ResultConfig, Err: errors.New("backend does not support STARTTLS")})
		}
		if line, err := askLine(nc, br, "STARTTLS"); err != nil || !strings.HasPrefix(line, "OK") {
			return fail(login.Unavailable("STARTTLS refused: %q %v", line, err))
		}
		tc, err := login.ClientTLS(nc, tlsConf, dest)
		if err != nil {
			return fail(login.Unavailable("STARTTLS handshake: %w", err))
		}
		nc, br = tc, relay.NewReader(tc)
		// The server repeats its capabilities under TLS (RFC 5804 section 2.2).
		if caps, err = readGreeting(br); err != nil {
			return fail(login.Unavailable("reading capabilities after STARTTLS: %w", err))
		}
	}
	if _, ok := caps["XCLIENT"]; ok && tg.Trusted() && c.Remote.IsValid() {
		line, err := askLine(nc, br, fmt.Sprintf("XCLIENT ADDR=%s PORT=%d SESSION=%s TTL=%d",
			c.Remote.Addr(), c.Remote.Port(), c.SessionID, c.TTL-1))
		if err != nil || !strings.HasPrefix(line, "OK") {
			return fail(login.Unavailable("XCLIENT refused: %q %v", line, err))
		}
	}
	return nc, br, caps, login.Result{Kind: login.ResultOK}
}

// loginReply maps the backend's answer to an AUTHENTICATE.
func loginReply(nc net.Conn, reply string, br *bufio.Reader) (*login.Session, login.Result) {
	word, rest, _ := strings.Cut(reply, " ")
	switch strings.ToUpper(word) {
	case "OK":
		_ = nc.SetDeadline(time.Time{})
		return &login.Session{Conn: nc, BR: br, OK: []string{reply}}, login.Result{Kind: login.ResultOK}
	case "NO":
		if strings.HasPrefix(rest, "(") {
			return nil, login.Result{Kind: login.ResultForward, Text: reply}
		}
		return nil, login.Result{Kind: login.ResultAuthFailed, Text: reply}
	case "BYE":
		return nil, login.Unavailable("backend said %q", reply)
	}
	return nil, login.Result{Kind: login.ResultAuthFailed, Text: noAuthFailed}
}
