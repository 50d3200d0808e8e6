package lmtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
)

// backend is the one connection a transaction has to one backend.
type backend struct {
	c     *conn
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
func (c *conn) openBackend(ctx context.Context, dest netip.AddrPort, tx *txn) *backend {
	// A connection left from this client's previous transaction saves the connect, greeting,
	// LHLO and XCLIENT round trips; if the backend has dropped it meanwhile, dial afresh.
	if b := c.spare[dest.Addr()]; b != nil {
		delete(c.spare, dest.Addr())
		if err := b.mail(tx); err == nil {
			return b
		}
		b.drop()
	}
	b := &backend{c: c, addr: dest}
	nc, err := c.s.dial(ctx, dest.String())
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
	if err := b.handshake(tx); err != nil {
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

func (b *backend) handshake(tx *txn) error {
	cfg := &b.c.s.cfg
	if cfg.BackendProxyProtocol {
		// Before anything else: the backend reads the header before it greets.
		_ = b.nc.SetWriteDeadline(time.Now().Add(cfg.ProxyTimeout))
		b.bw.Write(b.c.proxyHeader())
		if err := b.bw.Flush(); err != nil {
			return &backendError{"connect", err}
		}
	}
	greeting, err := b.readReply()
	if err != nil {
		return err
	}
	if greeting.code != 220 {
		return badReply("greeting %q", greeting.lines[0])
	}
	rep, err := b.command("LHLO " + cfg.Hostname)
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
	if args, ok := b.caps["XCLIENT"]; ok {
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
