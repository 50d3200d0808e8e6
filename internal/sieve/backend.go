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
// capability names (upper case).
func readGreeting(br *bufio.Reader) (map[string]bool, error) {
	caps := map[string]bool{}
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
		if name, _, ok := quoted(line, 0); ok {
			caps[strings.ToUpper(name)] = true
		}
	}
	return nil, errors.New("too many capability lines")
}

// backendDialogue logs cr in on a backend stream the way Pigeonhole's managesieve proxy does:
// greeting, optional STARTTLS, XCLIENT with the client's address when offered, then
// AUTHENTICATE "PLAIN" with an initial response. The passdb's fields (login.TargetOf) decide
// TLS, the credentials and whether XCLIENT is sent.
func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, cr login.Creds) (*login.Session, login.Result) {
	tg := login.TargetOf(ctx)
	ssl, tlsConf := tg.BackendTLS(c.s.cfg.BackendSSL, c.s.cfg.BackendTLS)
	cr = tg.Creds(cr)
	caps, err := readGreeting(br)
	if err != nil {
		return nil, login.Unavailable("reading greeting: %w", err)
	}
	ask := func(line string) (string, error) {
		if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
			return "", err
		}
		return backendLine(br)
	}
	if ssl == "starttls" {
		if !caps["STARTTLS"] {
			return nil, login.Result{Kind: login.ResultConfig, Err: errors.New("backend does not support STARTTLS")}
		}
		if line, err := ask("STARTTLS"); err != nil || !strings.HasPrefix(line, "OK") {
			return nil, login.Unavailable("STARTTLS refused: %q %v", line, err)
		}
		tc, err := login.ClientTLS(nc, tlsConf, dest)
		if err != nil {
			return nil, login.Unavailable("STARTTLS handshake: %w", err)
		}
		nc, br = tc, relay.NewReader(tc)
		// The server repeats its capabilities under TLS (RFC 5804 section 2.2).
		if caps, err = readGreeting(br); err != nil {
			return nil, login.Unavailable("reading capabilities after STARTTLS: %w", err)
		}
	}
	if caps["XCLIENT"] && tg.Trusted() {
		line, err := ask(fmt.Sprintf("XCLIENT ADDR=%s PORT=%d SESSION=%s TTL=%d",
			c.Remote.Addr(), c.Remote.Port(), c.SessionID, c.TTL-1))
		if err != nil || !strings.HasPrefix(line, "OK") {
			return nil, login.Unavailable("XCLIENT refused: %q %v", line, err)
		}
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cr.Authz + "\x00" + cr.User + "\x00" + cr.Pass))
	reply, err := ask(`AUTHENTICATE "PLAIN" "` + ir + `"`)
	if err != nil {
		return nil, login.Unavailable("reading login reply: %w", err)
	}
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
