package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
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
	resultAuthFailed // the backend's failure line (text) is forwarded and counts as a penalty
	resultForward    // an -ERR with a response code, passed on verbatim
	resultConfig     // the backend cannot be used as configured
)

type result struct {
	kind resultKind
	text string // resultAuthFailed, resultForward: the line for the client
	err  error
}

func unavailable(format string, a ...any) result {
	return result{kind: resultUnavailable, err: fmt.Errorf(format, a...)}
}

// backendSession is a backend connection on which the client's user is logged in.
type backendSession struct {
	conn   net.Conn
	br     *bufio.Reader // may hold bytes the backend sent after its +OK
	addr   netip.AddrPort
	user   string
	okLine string // the backend's "+OK ..." answer to the login, for the client
}

func addrPortOf(ip netip.Addr, port int) netip.AddrPort {
	return netip.AddrPortFrom(ip, uint16(port))
}

// maxBackendLine bounds one backend reply line before login.
const maxBackendLine = 64 << 10

// loginBackend connects to dest and logs cr in the way Dovecot's pop3 proxy does: banner,
// optional STLS, XCLIENT with the client's address when the banner offers it, then USER/PASS
// (or AUTH PLAIN when the credentials cannot travel on a POP3 line or name a master user).
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
	banner, err := readLine(br, maxBackendLine)
	if err != nil {
		return nil, unavailable("reading banner: %w", err)
	}
	if !strings.HasPrefix(banner, "+OK") {
		return nil, unavailable("bad banner %q", banner)
	}
	xclient := strings.HasPrefix(banner, "+OK [XCLIENT]")
	// ask sends one command and returns the backend's one-line answer.
	ask := func(line string) (string, error) {
		if _, err := nc.Write([]byte(line + "\r\n")); err != nil {
			return "", err
		}
		return readLine(br, maxBackendLine)
	}
	if ssl == "starttls" {
		if line, err := ask("STLS"); err != nil || !strings.HasPrefix(line, "+OK") {
			return nil, unavailable("STLS refused: %q %v", line, err)
		}
		tc := tls.Client(nc, c.backendTLS(dest))
		if err := tc.Handshake(); err != nil {
			return nil, unavailable("STLS handshake: %w", err)
		}
		nc, br = tc, bufio.NewReaderSize(tc, 4096)
	}
	if xclient {
		line, err := ask(fmt.Sprintf("XCLIENT ADDR=%s PORT=%d SESSION=%s TTL=%d",
			c.remote.Addr(), c.remote.Port(), c.sessionID, c.ttl-1))
		if err != nil || !strings.HasPrefix(line, "+OK") {
			return nil, unavailable("XCLIENT refused: %q %v", line, err)
		}
	}
	var reply string
	if usableOnLine(cr.user) && usableOnLine(cr.pass) && cr.authz == "" {
		reply, err = ask("USER " + cr.user)
		if err == nil && strings.HasPrefix(reply, "+OK") {
			reply, err = ask("PASS " + cr.pass)
		}
	} else {
		ir := base64.StdEncoding.EncodeToString([]byte(cr.authz + "\x00" + cr.user + "\x00" + cr.pass))
		reply, err = ask("AUTH PLAIN " + ir)
	}
	if err != nil {
		return nil, unavailable("reading login reply: %w", err)
	}
	return loginReply(nc, br, dest, reply)
}

// usableOnLine: USER and PASS take the rest of the line, so anything but line breaks and NUL
// goes through unchanged.
func usableOnLine(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\r\n\x00")
}

var noDeadline time.Time

// loginReply maps the backend's answer to the login (reference 6.3).
func loginReply(nc net.Conn, br *bufio.Reader, dest netip.AddrPort, reply string) (*backendSession, result) {
	switch {
	case strings.HasPrefix(reply, "+OK"):
		_ = nc.SetDeadline(noDeadline)
		return &backendSession{conn: nc, br: br, addr: dest, okLine: reply}, result{kind: resultOK}
	case strings.HasPrefix(reply, "-ERR [AUTH]"), reply == "-ERR", strings.HasPrefix(reply, "-ERR ") && !strings.HasPrefix(reply, "-ERR ["):
		return nil, result{kind: resultAuthFailed, text: reply}
	case strings.HasPrefix(reply, "-ERR ["):
		return nil, result{kind: resultForward, text: reply}
	}
	return nil, result{kind: resultAuthFailed, text: "-ERR Authentication failed."}
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
