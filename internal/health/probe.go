// Package health checks usher's backends itself, so that a site needs no
// external monitor (poolmon) on every director. One director checks every
// backend at a time (the raft leader, see Checker); a backend's verdict
// changes only after `fall` failed or `rise` passed checks in a row, and
// goes into the replicated log like HOST-DOWN/HOST-UP.
package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// Kinds of check (usher_health_check).
const (
	KindIMAP = "imap"
	KindPOP3 = "pop3"
	KindLMTP = "lmtp"
	KindNone = "none"
)

// maxLine bounds one line read from a backend: a greeting or a capability
// line is far shorter.
const maxLine = 8192

// Probe is one check of one backend: connect to the protocol's port, read
// the greeting, and for IMAP and POP3 log in when User is set; LMTP sends
// LHLO. backend_ssl applies as it does to proxied sessions.
type Probe struct {
	Kind     string
	Port     int
	SSL      string      // backend_ssl: no, yes, starttls
	TLS      *tls.Config // the proxies' TLS towards backends (ssl_client_ca_file, backend_ssl_name); nil: the system roots
	User     string      // usher_health_check_user; "" = no login
	Password string      // never logged
	Timeout  time.Duration
	// Source is the local address probes are sent from (the director's
	// ring address), so a backend's log names the checking director.
	// Invalid: the system picks.
	Source netip.Addr
	// ProxyHeader opens each probe with a PROXY v2 LOCAL header (backend_proxy_protocol = v2):
	// a backend listening with haproxy = yes refuses a connection without one, and LOCAL is
	// the protocol's word for a balancer's own health check.
	ProxyHeader bool
}

// Check runs the probe against ip. A nil error means the backend passed.
func (p *Probe) Check(ctx context.Context, ip netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	dest := netip.AddrPortFrom(ip, uint16(p.Port))
	d := net.Dialer{KeepAlive: -1}
	if p.Source.IsValid() && p.Source.Is4() == ip.Unmap().Is4() {
		d.LocalAddr = &net.TCPAddr{IP: p.Source.AsSlice()}
	}
	raw, err := d.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	if p.ProxyHeader {
		if _, err := raw.Write(proxyproto.AppendLocalV2(nil)); err != nil {
			return fmt.Errorf("PROXY header: %w", err)
		}
	}
	return p.dialogue(raw, dest)
}

// dialogue runs the check's protocol on a connected stream.
func (p *Probe) dialogue(raw net.Conn, dest netip.AddrPort) error {
	c := &conn{nc: raw}
	if p.SSL == "yes" {
		tc, err := login.ClientTLS(raw, p.TLS, dest)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		c.nc = tc
	}
	c.br = bufio.NewReaderSize(c.nc, 1024)
	starttls := func() error {
		tc, err := login.ClientTLS(c.nc, p.TLS, dest)
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		c.nc = tc
		c.br = bufio.NewReaderSize(tc, 1024)
		return nil
	}
	switch p.Kind {
	case KindPOP3:
		return p.pop3(c, starttls)
	case KindLMTP:
		return p.lmtp(c, starttls)
	}
	return p.imap(c, starttls)
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
}

func (c *conn) line() (string, error) {
	var sb strings.Builder
	for {
		chunk, isPrefix, err := c.br.ReadLine()
		if err != nil {
			return "", err
		}
		if sb.Len()+len(chunk) > maxLine {
			return "", errors.New("line too long")
		}
		sb.Write(chunk)
		if !isPrefix {
			return sb.String(), nil
		}
	}
}

func (c *conn) send(s string) error {
	_, err := c.nc.Write([]byte(s + "\r\n"))
	return err
}

// tagged sends an IMAP command and returns the rest of its tagged reply;
// untagged lines before it are skipped.
func (c *conn) tagged(cmd, tag string) (string, error) {
	if err := c.send(tag + " " + cmd); err != nil {
		return "", err
	}
	for {
		l, err := c.line()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimPrefix(l, tag+" "), nil
		}
	}
}

func shorten(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

func (p *Probe) imap(c *conn, starttls func() error) error {
	g, err := c.line()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(g, "* OK") {
		return fmt.Errorf("greeting %s", shorten(g))
	}
	if p.SSL == "starttls" {
		if r, err := c.tagged("STARTTLS", "h1"); err != nil || !strings.HasPrefix(r, "OK") {
			return fmt.Errorf("STARTTLS refused: %s %v", shorten(r), err)
		}
		if err := starttls(); err != nil {
			return err
		}
	}
	if p.User != "" {
		r, err := c.tagged("LOGIN "+imapQuote(p.User)+" "+imapQuote(p.Password), "h2")
		if err != nil {
			return fmt.Errorf("LOGIN: %w", err)
		}
		if !strings.HasPrefix(r, "OK") {
			// The reply text is the backend's, never the password.
			return fmt.Errorf("LOGIN failed: %s", shorten(r))
		}
	}
	// A polite end; the verdict does not depend on it.
	c.tagged("LOGOUT", "h3")
	return nil
}

// imapQuote makes an IMAP quoted string. Names and passwords with CR, LF or
// NUL cannot be quoted; the config check refuses them.
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (p *Probe) pop3(c *conn, starttls func() error) error {
	cmd := func(s string) error {
		if err := c.send(s); err != nil {
			return err
		}
		l, err := c.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			verb, _, _ := strings.Cut(s, " ")
			return fmt.Errorf("%s: %s", verb, shorten(l))
		}
		return nil
	}
	g, err := c.line()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(g, "+OK") {
		return fmt.Errorf("greeting %s", shorten(g))
	}
	if p.SSL == "starttls" {
		if err := cmd("STLS"); err != nil {
			return err
		}
		if err := starttls(); err != nil {
			return err
		}
	}
	if p.User != "" {
		if err := cmd("USER " + p.User); err != nil {
			return err
		}
		if err := cmd("PASS " + p.Password); err != nil {
			return errors.New("PASS refused")
		}
	}
	c.send("QUIT")
	return nil
}

// smtpReply reads a (multi-line) SMTP/LMTP reply and checks its code.
func (c *conn) smtpReply(want string) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if len(l) < 3 || l[:3] != want {
			return fmt.Errorf("reply %s", shorten(l))
		}
		if len(l) == 3 || l[3] == ' ' {
			return nil
		}
	}
}

func (p *Probe) lmtp(c *conn, starttls func() error) error {
	if err := c.smtpReply("220"); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	lhlo := func() error {
		if err := c.send("LHLO usher-health-check"); err != nil {
			return err
		}
		if err := c.smtpReply("250"); err != nil {
			return fmt.Errorf("LHLO: %w", err)
		}
		return nil
	}
	if err := lhlo(); err != nil {
		return err
	}
	if p.SSL == "starttls" {
		if err := c.send("STARTTLS"); err != nil {
			return err
		}
		if err := c.smtpReply("220"); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		if err := starttls(); err != nil {
			return err
		}
		if err := lhlo(); err != nil {
			return err
		}
	}
	c.send("QUIT")
	return nil
}
