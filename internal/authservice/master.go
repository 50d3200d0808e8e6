package authservice

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/tabescape"
)

// The auth-master protocol, as far as a PASS lookup needs it (Dovecot's lmtp asks it for
// every recipient when lmtp_proxy is on): the client sends "VERSION\t1\t0", the service
// "VERSION\t1\t<minor>" and "SPID\t<pid>"; then "PASS\t<id>\t<user>\t<info>" is answered by
// "PASS\t<id>\tuser=<name>\t<fields>", "NOTFOUND\t<id>" or "FAIL\t<id>[\treason=<text>]".
// Dovecot serves it on the auth service's auth-master and auth-userdb listeners (any listener
// whose name ends in -master or -userdb). Like Dovecot's own lookup client, a connection
// carries one request at a time; idle ones are kept for the next lookup.

const (
	maxMasterLine = 16384 // a passdb's fields; longer ends the connection
	maxIdleMaster = 8
)

// errMasterProtocol marks a line that is not the auth-master protocol.
var errMasterProtocol = errors.New("auth-master protocol error")

type masterPool struct {
	ep config.Endpoint

	mu     sync.Mutex
	idle   []*masterConn
	nextID uint32
	closed bool
}

type masterConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// lookup asks the auth-master listener for req.User without a password.
func (s *Service) lookup(ctx context.Context, req passdb.Request) (passdb.Reply, error) {
	if s.masters == nil {
		return unavailable(errors.New("a lookup without a password needs the auth-master listener (auth_socket_path)"))
	}
	if req.User == "" || strings.ContainsFunc(req.User, func(r rune) bool { return r < ' ' }) {
		return passdb.Reply{}, nil // Dovecot's client refuses such a name as not found, unsent
	}
	r, err := s.masters.pass(ctx, req)
	if err != nil {
		return unavailable(err)
	}
	return r, nil
}

func (p *masterPool) pass(ctx context.Context, req passdb.Request) (passdb.Reply, error) {
	c, reused, err := p.get(ctx)
	if err != nil {
		return passdb.Reply{}, err
	}
	r, err := p.passOn(ctx, c, req)
	if err != nil && reused && ctx.Err() == nil {
		// The service may have closed an idle connection (it restarted): once more, afresh.
		if c, _, err = p.get(ctx); err == nil {
			r, err = p.passOn(ctx, c, req)
		}
	}
	return r, err
}

func (p *masterPool) passOn(ctx context.Context, c *masterConn, req passdb.Request) (passdb.Reply, error) {
	p.mu.Lock()
	p.nextID++
	if p.nextID == 0 {
		p.nextID = 1
	}
	id := p.nextID
	p.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	// A caller that gives up ends the wait at once (and the connection with it).
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	r, err := c.pass(id, req)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.conn.Close()
		return passdb.Reply{}, err
	}
	c.conn.SetDeadline(time.Time{})
	p.put(c)
	return r, nil
}

func (c *masterConn) pass(id uint32, req passdb.Request) (passdb.Reply, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "PASS\t%d\t%s\tservice=%s", id, req.User, tabescape.Escape(req.Service))
	if a := req.Local; a.IsValid() {
		fmt.Fprintf(&b, "\tlip=%s\tlport=%d", a.Addr().Unmap(), a.Port())
	}
	if a := req.Remote; a.IsValid() {
		fmt.Fprintf(&b, "\trip=%s\trport=%d", a.Addr().Unmap(), a.Port())
	}
	if req.Session != "" {
		b.WriteString("\tsession=" + tabescape.Escape(req.Session))
	}
	b.WriteByte('\n')
	if b.Len() > maxMasterLine {
		return passdb.Reply{}, fmt.Errorf("lookup line of %d bytes", b.Len())
	}
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		return passdb.Reply{}, err
	}
	for {
		line, err := readMasterLine(c.r)
		if err != nil {
			return passdb.Reply{}, err
		}
		if v, ok := strings.CutPrefix(line, "VERSION\t"); ok {
			if !strings.HasPrefix(v, "1\t") {
				return passdb.Reply{}, fmt.Errorf("%w: the service speaks version %.16q, not 1.x", errMasterProtocol, v)
			}
			continue // the handshake, read lazily with the first answer
		}
		if strings.HasPrefix(line, "SPID\t") {
			continue
		}
		got, r, err := ParseMasterReply(line)
		if err != nil {
			return passdb.Reply{}, err
		}
		if got == id {
			return r, nil
		}
		// an answer to an earlier request given up on this connection: not possible, as a
		// connection whose request failed is closed, but harmless to skip
	}
}

func readMasterLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", fmt.Errorf("%w: line over %d bytes", errMasterProtocol, maxMasterLine)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(line[:len(line)-1]), "\r"), nil
}

// ParseMasterReply parses one answer to a PASS lookup: PASS (found; user= is the settled name,
// the other fields go on raw), NOTFOUND (an unknown user: not OK, not temporary) or FAIL (the
// service could not decide: temporary, with its reason=). The handshake's lines are not
// answers and are errors here.
func ParseMasterReply(line string) (id uint32, r passdb.Reply, err error) {
	if len(line) > maxMasterLine {
		return 0, r, fmt.Errorf("%w: line of %d bytes", errMasterProtocol, len(line))
	}
	f := strings.Split(line, "\t")
	if len(f) < 2 {
		return 0, r, fmt.Errorf("%w: %.64q", errMasterProtocol, line)
	}
	n, perr := strconv.ParseUint(f[1], 10, 32)
	if perr != nil || n == 0 || f[1][0] == '0' {
		return 0, r, fmt.Errorf("%w: request id %.64q", errMasterProtocol, f[1])
	}
	switch f[0] {
	case "PASS":
		r.OK = true
	case "NOTFOUND":
		if len(f) > 2 {
			return 0, r, fmt.Errorf("%w: NOTFOUND with fields", errMasterProtocol)
		}
	case "FAIL":
		r.Temp = true
	default:
		return 0, r, fmt.Errorf("%w: unknown reply %.64q", errMasterProtocol, f[0])
	}
	for _, kv := range f[2:] {
		if kv == "" {
			continue
		}
		k, v, has := strings.Cut(kv, "=")
		if k = tabescape.Unescape(k); k == "" {
			return 0, passdb.Reply{}, fmt.Errorf("%w: field without a name", errMasterProtocol)
		}
		v = tabescape.Unescape(v)
		switch {
		case k == "user" && r.OK:
			r.User = v
			continue
		case k == "reason" && r.Temp:
			r.Reason = v
		}
		r.Fields = append(r.Fields, rawField(k, v, has))
	}
	return uint32(n), r, nil
}

// get returns an idle connection (reused) or a new one.
func (p *masterPool) get(ctx context.Context) (c *masterConn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errors.New("closed")
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, p.ep.Network, p.ep.Addr)
	if err != nil {
		return nil, false, err
	}
	// The client speaks first; the service's VERSION and SPID are read with the first answer.
	conn.SetWriteDeadline(time.Now().Add(dialTimeout))
	if _, err := conn.Write([]byte("VERSION\t1\t0\n")); err != nil {
		conn.Close()
		return nil, false, err
	}
	return &masterConn{conn: conn, r: bufio.NewReaderSize(conn, maxMasterLine+1)}, false, nil
}

// put keeps c for the next lookup.
func (p *masterPool) put(c *masterConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleMaster {
		c.conn.Close()
		return
	}
	p.idle = append(p.idle, c)
}

func (p *masterPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.conn.Close()
	}
	p.idle = nil
}
