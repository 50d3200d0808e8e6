package lmtp

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
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/proxyproto"
)

// backendKey is a backend and how a recipient's passdb fields say to reach it: recipients
// share a connection only when all of it matches.
type backendKey struct {
	addr       netip.AddrPort
	ssl        string // "yes" (TLS at once), "starttls" or "no"
	anyCert    bool   // the certificate is not checked
	notTrusted bool   // proxy_not_trusted: no XCLIENT, no forward fields
}

// backend is the one connection a transaction has to one backend.
type backend struct {
	c     *conn
	key   backendKey
	addr  netip.AddrPort
	nc    net.Conn // nil when connecting failed
	br    *bufio.Reader
	bw    *bufio.Writer
	dw    dotWriter
	caps  map[string]string // LHLO keywords (upper case) to their arguments
	rcpts []*recipient

	// failReason is the word in "Proxy failed (<reason>, ...)"; failReply, when set, is a
	// backend reply that every recipient still waiting gets instead.
	failReason string
	failReply  []string
	kicked     atomic.Bool
	dataDone   bool // the final "." went out and every reply was read
}

// reply is one (possibly multi-line) SMTP reply, lines as received without CRLF.
type reply struct {
	code  int
	lines []string
}

// backendError carries the reason word for the client's 451.
type backendError struct {
	reason string
	err    error
}

func (e *backendError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *backendError) Unwrap() error { return e.err }

func badReply(format string, a ...any) error {
	return &backendError{"bad reply", fmt.Errorf(format, a...)}
}

// openBackend connects to dest and gets it ready for recipients: greeting, LHLO, XCLIENT with
// the client's address when offered, MAIL FROM. Failures are recorded in the returned backend.
func (c *conn) openBackend(ctx context.Context, key backendKey, tx *txn) *backend {
	// A connection left from this client's previous transaction saves the connect, greeting,
	// LHLO and XCLIENT round trips; if the backend has dropped it meanwhile, dial afresh.
	if b := c.spare[key]; b != nil {
		delete(c.spare, key)
		if err := b.mail(tx); err == nil {
			return b
		}
		b.drop()
	}
	dest := key.addr
	b := &backend{c: c, key: key, addr: dest}
	nc, err := c.s.dial(ctx, dest.String())
	if err == nil && c.s.cfg.BackendProxyProtocol {
		err = c.sendProxyHeader(nc)
	}
	if err == nil && key.ssl == "yes" {
		nc, err = b.startTLS(ctx, nc)
	}
	if err != nil {
		b.failReason = "connect"
		c.log.Warn("backend connect failed", "backend", dest.String(), "err", err)
		return b
	}
	if !c.track(nc) {
		nc.Close()
		b.failReason = "connect"
		return b
	}
	b.nc, b.br, b.bw = nc, bufio.NewReaderSize(nc, 4096), bufio.NewWriterSize(nc, 32<<10)
	b.dw.w = b.bw
	if err := b.handshake(ctx, tx); err != nil {
		b.fail(err)
	}
	return b
}

// proxyHeader is the PROXY v2 header of backend_proxy_protocol = v2: the client and the
// address it connected to, or LOCAL for a client on a unix socket, which has neither.
func (c *conn) proxyHeader() []byte {
	if c.remote.IsValid() && c.local.IsValid() {
		return proxyproto.AppendV2(nil, c.remote, c.local, false, "")
	}
	return proxyproto.AppendLocalV2(nil)
}

// sendProxyHeader writes the header first on a new backend connection: the backend reads it
// before anything else, TLS included. nc is closed on failure.
func (c *conn) sendProxyHeader(nc net.Conn) error {
	_ = nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ProxyTimeout))
	if _, err := nc.Write(c.proxyHeader()); err != nil {
		nc.Close()
		return err
	}
	return nil
}

// startTLS runs the TLS handshake on nc (closed on failure), as ssl= or starttls= ask.
func (b *backend) startTLS(ctx context.Context, nc net.Conn) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	tc, err := login.ClientTLS(nc, &tls.Config{InsecureSkipVerify: b.key.anyCert}, b.key.addr)
	if err != nil {
		nc.Close()
		return nil, &backendError{"connect", fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

func (b *backend) handshake(ctx context.Context, tx *txn) error {
	greeting, err := b.readReply()
	if err != nil {
		return err
	}
	if greeting.code != 220 {
		return badReply("greeting %q", greeting.lines[0])
	}
	if err := b.lhlo(); err != nil {
		return err
	}
	if b.key.ssl == "starttls" {
		if _, ok := b.caps["STARTTLS"]; !ok {
			return badReply("no STARTTLS in LHLO")
		}
		if rep, err := b.command("STARTTLS"); err != nil || rep.code != 220 {
			return badReply("STARTTLS: %v %v", rep.lines, err)
		}
		plain := b.nc
		b.c.untrack(plain)
		tc, err := b.startTLS(ctx, plain)
		if err != nil {
			return err
		}
		if !b.c.track(tc) {
			tc.Close()
			return badReply("connection aborted")
		}
		b.nc, b.br, b.bw = tc, bufio.NewReaderSize(tc, 4096), bufio.NewWriterSize(tc, 32<<10)
		b.dw.w = b.bw
		if err := b.lhlo(); err != nil {
			return err
		}
	}
	if args, ok := b.caps["XCLIENT"]; ok && !b.key.notTrusted {
		for _, x := range xclientCommands(b.c.xclientFields(), strings.Fields(args)) {
			rep, err := b.command(x)
			if err != nil {
				return err
			}
			// A refused XCLIENT leaves the session as it was; the mail still goes through.
			if rep.code/100 != 2 {
				b.c.log.Warn("backend refused XCLIENT", "backend", b.addr.String(), "reply", rep.lines[0])
			}
		}
	}
	return b.mail(tx)
}

// lhlo greets the backend and learns its capabilities.
func (b *backend) lhlo() error {
	rep, err := b.command("LHLO " + b.c.s.cfg.Hostname)
	if err != nil {
		return err
	}
	if rep.code != 250 {
		return badReply("LHLO: %q", rep.lines[0])
	}
	b.caps = map[string]string{}
	for _, l := range rep.lines[1:] {
		k, v, _ := strings.Cut(l[4:], " ")
		b.caps[strings.ToUpper(k)] = v
	}
	return nil
}

// mail starts the transaction on the backend.
func (b *backend) mail(tx *txn) error {
	mail := "MAIL FROM:<" + tx.from + ">"
	if _, ok := b.caps["8BITMIME"]; ok && tx.body != "" {
		mail += " BODY=" + tx.body
	}
	rep, err := b.command(mail)
	if err != nil {
		return err
	}
	if rep.code/100 != 2 {
		// The backend's own words are the best explanation for the recipients.
		b.failReply = rep.lines
		return badReply("MAIL: %q", rep.lines[0])
	}
	return nil
}

// xclientFields are the XCLIENT attributes describing the client, in Dovecot's order.
func (c *conn) xclientFields() [][2]string {
	var f [][2]string
	// A client on a UNIX socket (Dovecot's default lmtp listener) has no address to forward.
	if ip := c.remote.Addr(); ip.IsValid() {
		addr := ip.String()
		if ip.Is6() {
			addr = "IPV6:" + addr
		}
		f = append(f, [2]string{"ADDR", addr}, [2]string{"PORT", strconv.Itoa(int(c.remote.Port()))})
	}
	f = append(f, [][2]string{
		{"SESSION", c.sessionID},
		{"TTL", strconv.Itoa(c.ttl() - 1)},
		{"TIMEOUT", strconv.Itoa(int(c.s.cfg.ProxyTimeout / time.Second))},
		{"PROTO", "LMTP"},
	}...)
	if c.helo != "" {
		f = append(f, [2]string{"HELO", c.helo})
	}
	return f
}

// ttl is the proxy hop budget of this client; usher is the first proxy an MTA talks to.
func (c *conn) ttl() int { return 5 }

// xclientCommands builds XCLIENT lines with the fields the backend advertised, each under
// SMTP's 512-byte command limit.
func xclientCommands(fields [][2]string, offered []string) []string {
	ok := map[string]bool{}
	for _, o := range offered {
		ok[strings.ToUpper(o)] = true
	}
	var out []string
	cur := "XCLIENT"
	for _, f := range fields {
		if !ok[f[0]] {
			continue
		}
		piece := " " + f[0] + "=" + xtext(f[1])
		if len(cur)+len(piece) > 510 && cur != "XCLIENT" {
			out = append(out, cur)
			cur = "XCLIENT"
		}
		cur += piece
	}
	if cur != "XCLIENT" {
		out = append(out, cur)
	}
	return out
}

// xtext encodes a value as RFC 3461 xtext, which XCLIENT values are.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < '!' || ch > '~' || ch == '+' || ch == '=' {
			fmt.Fprintf(&b, "+%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func (b *backend) ok() bool { return b.failReason == "" && b.failReply == nil }

// failedReply is what a recipient of a failed backend is told.
func (b *backend) failedReply(c *conn) []string {
	if b.failReply != nil {
		return b.failReply
	}
	return []string{c.proxyFailed(b.failReason)}
}

// fail marks the backend unusable for the rest of the transaction and drops its connection,
// so a half-sent message is never completed.
func (b *backend) fail(err error) {
	if b.failReason == "" {
		var be *backendError
		var ne net.Error
		switch {
		case b.kicked.Load():
			b.failReason = "connection lost"
		case errors.As(err, &be):
			b.failReason = be.reason
		case errors.As(err, &ne) && ne.Timeout():
			b.failReason = "timed out"
		default:
			b.failReason = "connection lost"
		}
		b.c.log.Warn("backend failed", "backend", b.addr.String(), "reason", b.failReason, "err", err)
	}
	b.drop()
}

func (b *backend) drop() {
	if b.nc != nil {
		b.nc.Close()
		b.c.untrack(b.nc)
	}
}

// kick is the session registry's way to stop a delivery (director move, doveadm kick). It
// may run on any goroutine; the transaction notices the closed connection.
func (b *backend) kick() {
	b.kicked.Store(true)
	if b.nc != nil {
		b.nc.Close()
	}
}

// close ends the connection; polite sends QUIT first (not in the middle of a message).
func (b *backend) close(polite bool) {
	if b.nc == nil {
		return
	}
	if polite && b.ok() {
		_ = b.nc.SetWriteDeadline(time.Now().Add(time.Second))
		b.bw.WriteString("QUIT\r\n")
		_ = b.bw.Flush()
	}
	b.drop()
}

// command sends one line and reads its reply.
func (b *backend) command(line string) (reply, error) {
	_ = b.nc.SetWriteDeadline(time.Now().Add(b.c.s.cfg.ProxyTimeout))
	b.bw.WriteString(line)
	b.bw.WriteString("\r\n")
	if err := b.bw.Flush(); err != nil {
		return reply{}, err
	}
	return b.readReply()
}

// readReply reads one reply within the proxy timeout.
func (b *backend) readReply() (reply, error) {
	_ = b.nc.SetReadDeadline(time.Now().Add(b.c.s.cfg.ProxyTimeout))
	var r reply
	for {
		frag, err := b.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return r, badReply("reply line too long")
			}
			return r, err
		}
		line := strings.TrimRight(string(frag), "\r\n")
		if len(line) < 3 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return r, badReply("%q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || r.code != 0 && code != r.code {
			return r, badReply("%q", line)
		}
		r.code = code
		r.lines = append(r.lines, line)
		if len(line) == 3 || line[3] == ' ' {
			return r, nil
		}
		if len(r.lines) > 100 {
			return r, badReply("reply too long")
		}
	}
}
