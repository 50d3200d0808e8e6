package sieve

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

type resultKind int

const (
	resultUnavailable resultKind = iota // connect, remote or protocol failure
	resultOK
	resultAuthFailed // the line for the client is in text; counts as a penalty
	resultForward    // a NO with a response code, passed on verbatim
	resultConfig     // the backend cannot be used as configured
)

type result struct {
	kind resultKind
	text string
	err  error
}

func unavailable(format string, a ...any) result {
	return result{kind: resultUnavailable, err: fmt.Errorf(format, a...)}
}

// backendSession is a backend connection on which the client's user is logged in.
type backendSession struct {
	conn   net.Conn
	br     *bufio.Reader // may hold bytes the backend sent after its OK
	addr   netip.AddrPort
	user   string
	okLine string // the backend's OK to AUTHENTICATE, for the client
}

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

// loginBackend connects to dest and logs cr in the way Pigeonhole's managesieve proxy does:
// greeting, optional STARTTLS, XCLIENT with the client's address when offered, then
// AUTHENTICATE "PLAIN" with an initial response.
func (c *conn) loginBackend(ctx context.Context, dest netip.AddrPort, cr creds) (*backendSession, result) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return nil, unavailable("connect: %w", err)
	}
	bs, res := c.backendDialogue(ctx, nc, dest, cr)
	if res.kind != resultOK {
		nc.Close()
		return nil, res
	}
	bs.user = cr.loginUser()
	return bs, res
}

func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, dest netip.AddrPort, cr creds) (*backendSession, result) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	ssl := c.s.cfg.BackendSSL
	if ssl == "yes" {
		tc := tls.Client(nc, c.backendTLS(dest))
		if err := tc.Handshake(); err != nil {
			return nil, unavailable("TLS handshake: %w", err)
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 4096)
	caps, err := readGreeting(br)
	if err != nil {
		return nil, unavailable("reading greeting: %w", err)
	}
	ask := func(line string) (string, error) {
		if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
			return "", err
		}
		return backendLine(br)
	}
	if ssl == "starttls" {
		if !caps["STARTTLS"] {
			return nil, result{kind: resultConfig, err: errors.New("backend does not support STARTTLS")}
		}
		if line, err := ask("STARTTLS"); err != nil || !strings.HasPrefix(line, "OK") {
			return nil, unavailable("STARTTLS refused: %q %v", line, err)
		}
		tc := tls.Client(nc, c.backendTLS(dest))
		if err := tc.Handshake(); err != nil {
			return nil, unavailable("STARTTLS handshake: %w", err)
		}
		nc, br = tc, bufio.NewReaderSize(tc, 4096)
		// The server repeats its capabilities under TLS (RFC 5804 section 2.2).
		if caps, err = readGreeting(br); err != nil {
			return nil, unavailable("reading capabilities after STARTTLS: %w", err)
		}
	}
	if caps["XCLIENT"] {
		line, err := ask(fmt.Sprintf("XCLIENT ADDR=%s PORT=%d SESSION=%s TTL=%d",
			c.remote.Addr(), c.remote.Port(), c.sessionID, c.ttl-1))
		if err != nil || !strings.HasPrefix(line, "OK") {
			return nil, unavailable("XCLIENT refused: %q %v", line, err)
		}
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cr.authz + "\x00" + cr.user + "\x00" + cr.pass))
	reply, err := ask(`AUTHENTICATE "PLAIN" "` + ir + `"`)
	if err != nil {
		return nil, unavailable("reading login reply: %w", err)
	}
	word, rest, _ := strings.Cut(reply, " ")
	switch strings.ToUpper(word) {
	case "OK":
		_ = nc.SetDeadline(time.Time{})
		return &backendSession{conn: nc, br: br, addr: dest, okLine: reply}, result{kind: resultOK}
	case "NO":
		if strings.HasPrefix(rest, "(") {
			return nil, result{kind: resultForward, text: reply}
		}
		return nil, result{kind: resultAuthFailed, text: reply}
	case "BYE":
		return nil, unavailable("backend said %q", reply)
	}
	return nil, result{kind: resultAuthFailed, text: noAuthFailed}
}

func (c *conn) backendTLS(dest netip.AddrPort) *tls.Config {
	cfg := &tls.Config{}
	if c.s.cfg.BackendTLS != nil {
		cfg = c.s.cfg.BackendTLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = dest.Addr().String()
	}
	return cfg
}
