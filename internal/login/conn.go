package login

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
	"github.com/usher-mail/usher/internal/relay"
)

type connState int

const (
	statePreLogin connState = iota
	stateProxying
	stateClosed
)

// Conn is the client side every front-end connection shares: the socket, the writer, and the
// state that decides what a kick or a shutdown does to it. A front-end embeds it and keeps
// only its protocol's reader and dialogue. Call Init before use.
type Conn struct {
	Raw net.Conn // the accepted TCP connection
	NC  net.Conn // Raw, or TLS on top of it
	TLS bool     // NC is TLS
	// ProxiedTLS: the load balancer in front (haproxy = yes) says the client reached it over
	// TLS (a PROXY v2 SSL TLV). As in Dovecot the connection counts as secured, and it is
	// passed on as TLS in a PROXY header to the backend. proxiedTLSVersion is the TLV's version.
	ProxiedTLS        bool
	proxiedTLSVersion string
	Log               *slog.Logger

	// Peer is the address the connection really comes from (the one a PROXY header carried,
	// on a listener with haproxy = yes); Remote and Local start equal to it and the address
	// it reached, and may be overridden by a trusted proxy in front (IMAP ID, XCLIENT), as
	// may SessionID and TTL.
	Peer          netip.AddrPort
	Remote, Local netip.AddrPort
	SessionID     string
	TTL           int // hops left, see ProxyTTL
	// Forward are forward fields ("key=value") a trusted proxy in front passed on; see
	// attempt.go.
	Forward []string

	// lastLine turns a text into the protocol's parting line (IMAP "* BYE", POP3 "-ERR", ...).
	lastLine func(text string) string

	wmu sync.Mutex // serialises writes to the client before login
	bw  *bufio.Writer

	mu         sync.Mutex
	state      connState
	backend    net.Conn
	relay      *relay.Session // set once the session is relayed
	kickReason string

	end func() // tells the connection set the session is over (see Serve)
}

// Init prepares c for the accepted connection nc. remoteAddr, when not nil, stands in for
// the socket's peer address (tests); log gets the session's attributes; lastLine formats the
// protocol's parting line.
func (c *Conn) Init(nc net.Conn, remoteAddr func(net.Conn) netip.AddrPort, log *slog.Logger, lastLine func(text string) string) {
	c.lastLine = lastLine
	c.TTL, c.SessionID = ProxyTTL, NewSessionID()
	c.Remote = AddrPort(nc.RemoteAddr())
	if remoteAddr != nil {
		c.Remote = remoteAddr(nc)
	}
	c.Peer = c.Remote
	c.Local = AddrPort(nc.LocalAddr())
	if pc, ok := nc.(*proxyproto.Conn); ok {
		// Its header has been read (see ConnSet.ServeThen): the addresses above are the
		// carried ones, and from here on the socket itself serves (the relay splices it).
		h := pc.Header()
		c.ProxiedTLS, c.proxiedTLSVersion = h.TLS, h.TLSVersion
		nc = pc.NetConn()
	}
	c.Raw, c.NC = nc, nc
	c.Log = log.With("session", c.SessionID, "rip", c.Remote.Addr().String())
}

// Secured reports whether the client's connection is on TLS, usher's own or a balancer's.
func (c *Conn) Secured() bool { return c.TLS || c.ProxiedTLS }

// ProxyHeader is the PROXY v2 header of backend_proxy_protocol = v2: the client's address,
// the one it connected to, and its TLS.
func (c *Conn) ProxyHeader() []byte {
	version := c.proxiedTLSVersion
	if tc, ok := c.NC.(*tls.Conn); ok {
		version = tlsVersionName(tc.ConnectionState().Version)
	}
	return proxyproto.AppendV2(nil, c.Remote, c.Local, c.Secured(), version)
}

// tlsVersionName is a TLS version as PROXY headers name it (OpenSSL's names: "TLSv1.3").
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return ""
}

// SetStream makes nc (Raw, or TLS on top of it) the stream replies go to.
func (c *Conn) SetStream(nc net.Conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.NC = nc
	c.bw = relay.NewWriter(nc)
}

// Reply writes lines to the client and flushes.
func (c *Conn) Reply(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.bw == nil { // a proxied session: only a parting line is ever written
		var b []byte
		for _, l := range lines {
			b = append(append(b, l...), "\r\n"...)
		}
		_, err := c.NC.Write(b)
		return err
	}
	for _, l := range lines {
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	return c.bw.Flush()
}

// Answer writes one line to the client (Reply for a single line, as a function value).
func (c *Conn) Answer(line string) error { return c.Reply(line) }

// LastWord sends the parting line, with a fresh write deadline since the login one may be over.
func (c *Conn) LastWord(text string) {
	_ = c.NC.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.Reply(c.lastLine(text))
}

// PreLogin reports whether the client has not logged in yet (nor been closed).
func (c *Conn) PreLogin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == statePreLogin
}

// Finish closes everything the connection still holds.
func (c *Conn) Finish() {
	c.mu.Lock()
	c.state = stateClosed
	be := c.backend
	c.mu.Unlock()
	if be != nil {
		be.Close()
	}
	c.NC.Close()
	c.Raw.Close()
}

// ClosePreLogin ends a connection that has not logged in yet (server shutdown) with a parting
// line. A proxied session is left alone.
func (c *Conn) ClosePreLogin(text string) {
	c.mu.Lock()
	if c.state != statePreLogin {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.mu.Unlock()
	// The connection's own goroutine may be in the middle of a write (its
	// greeting, say): a deadline bounds that write, so waiting for the lock
	// is short even for a client that reads nothing, and the parting line
	// still goes out after it.
	_ = c.NC.SetWriteDeadline(time.Now().Add(time.Second))
	c.wmu.Lock()
	if c.bw != nil {
		_ = c.NC.SetWriteDeadline(time.Now().Add(time.Second))
		c.bw.WriteString(c.lastLine(text) + "\r\n")
		_ = c.bw.Flush()
	}
	c.wmu.Unlock()
	c.Raw.Close()
}

// Kick ends the connection whatever its state. A proxied client gets the parting line with
// the reason once the relay has stopped (see Proxy); for POP3 and ManageSieve that is usher's
// deviation from Dovecot, which just closes.
func (c *Conn) Kick(reason string) {
	c.mu.Lock()
	st, be, sess := c.state, c.backend, c.relay
	if c.kickReason == "" {
		c.kickReason = reason
	}
	c.mu.Unlock()
	if st == stateProxying && sess != nil {
		sess.Kick()
		return
	}
	if st == stateProxying && be != nil {
		be.Close()
		return
	}
	c.ClosePreLogin(reason)
	c.Raw.Close()
}

// StartTLS runs the server side of a TLS handshake on Raw (implicit TLS, or STARTTLS once
// agreed) and hands the TLS stream to setStream; false when the handshake failed, which ends
// the connection. what names the step in the log.
func (c *Conn) StartTLS(cfg *tls.Config, what string, setStream func(net.Conn)) bool {
	tc := tls.Server(c.Raw, cfg)
	if err := tc.Handshake(); err != nil {
		c.Log.Debug(what+" handshake failed", "err", err)
		return false
	}
	c.TLS = true
	setStream(tc)
	return true
}

// PartingError is a read error that ends the connection with Text as its parting line.
type PartingError struct{ Text string }

func (e *PartingError) Error() string { return e.Text }

// ErrLineTooLong ends a connection whose line does not fit the buffer, in Dovecot's words.
var ErrLineTooLong = &PartingError{"Input buffer full, aborting"}

// ReadFailed says goodbye after a failed read where there are words for it.
func (c *Conn) ReadFailed(err error) {
	var pe *PartingError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		c.LastWord(pe.Text)
	case errors.As(err, &ne) && ne.Timeout() && c.PreLogin():
		c.LastWord("Disconnected for inactivity.")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.Log.Debug("read failed", "err", err)
	}
}

// ReadLine reads up to LF, strips CRLF and refuses a line longer than limit with
// ErrLineTooLong. The whole line is consumed before it is judged, so a parse error never
// leaves the stream half-read.
func ReadLine(br *bufio.Reader, limit int) (string, error) {
	var sb strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		if sb.Len()+len(frag) > limit+2 {
			return "", ErrLineTooLong
		}
		sb.Write(frag)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		line := strings.TrimSuffix(sb.String(), "\n")
		line = strings.TrimSuffix(line, "\r")
		// The check above allows for CRLF; a bare LF must not buy a byte.
		if len(line) > limit {
			return "", ErrLineTooLong
		}
		return line, nil
	}
}

// loginConn makes every type that embeds Conn a FrontConn.
func (c *Conn) loginConn() *Conn { return c }

// serve runs a connection's pre-login dialogue; after a login it returns the proxied session
// as a continuation (see ConnSet.ServeThen), which is handed the function to call once the
// session is over, and relays the session (see Proxy). Without a login the connection is
// finished at once and serve returns nil.
func serve(c *Conn, env *Env, service string, preLogin func() *Session) func(end func()) {
	sess := preLogin()
	if sess == nil {
		c.Finish()
		return nil
	}
	return func(end func()) {
		c.end = end
		c.Proxy(env, c.Log, Proxied{
			Info: SessionInfo{
				ID: c.SessionID, Service: service, User: sess.User, Route: sess.Route, Tag: sess.Tag,
				Client: c.Remote, Local: c.Local, Backend: sess.Addr,
			},
			Backend: sess.Conn,
			OK:      sess.OK,
			Take: func() (client, backend *bufio.Reader) {
				client, backend = sess.Client, sess.BR
				sess.Client, sess.BR = nil, nil
				return client, backend
			},
		})
	}
}

// AddrPort is a's address with IPv4-mapped IPv6 unmapped, so that policies, penalties and
// logs see one form of an IPv4 client whatever socket accepted it.
func AddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// NewSessionID returns a session id shaped like Dovecot's: 12 bytes in base64, 16 characters
// without padding. Dovecot packs time and address bits; random bytes serve the only purpose
// that matters here, being unique across a ring of directors and their backends.
func NewSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return base64.StdEncoding.EncodeToString(b[:])
}

// Proxied is a backend connection on which the client's user is logged in, ready to relay.
type Proxied struct {
	Info    SessionInfo // Start is filled in by Proxy
	Backend net.Conn
	OK      []string // the login answer for the client
	// Take hands over the pre-login readers (the client's, the backend's), which may hold
	// pipelined bytes, and makes the front-end drop its references: an idle session should
	// cost the kernel's socket buffers, not ours.
	Take func() (client, backend *bufio.Reader)
}

// Proxy registers the logged-in session and relays it until either side ends or it is kicked.
// It returns at once: the relay runs on an event loop (plain TCP) or its own goroutines (TLS),
// see package relay, and the connection is finished, and c.end called, when the session is
// over.
func (c *Conn) Proxy(env *Env, log *slog.Logger, p Proxied) {
	c.mu.Lock()
	if c.state != statePreLogin {
		// Shut down while the backend login was in progress.
		c.mu.Unlock()
		p.Backend.Close()
		c.over()
		return
	}
	c.state = stateProxying
	c.backend = p.Backend
	c.mu.Unlock()
	_ = c.Raw.SetDeadline(time.Time{})
	_ = c.NC.SetDeadline(time.Time{})

	start := time.Now()
	p.Info.Start = start
	done := env.Sessions.Register(p.Info, c.Kick)
	if err := c.Reply(p.OK...); err != nil {
		done(0, 0)
		c.over()
		return
	}

	cbuf, bbuf := p.Take()
	in0, out0 := relay.Handoff(c.NC, cbuf, p.Backend, bbuf)
	// Only a parting line is written from here on, without a buffer (see Reply).
	c.wmu.Lock()
	relay.ReleaseWriter(c.bw)
	c.bw = nil
	c.wmu.Unlock()

	// relay.Start calls this once, on an event loop or on the relay's goroutine.
	sess := relay.Start(c.NC, p.Backend, func(i, o int64) {
		if c.kicked() {
			// The parting line may wait for a slow client: not on the loop.
			go c.finishProxy(env, log, p.Info, start, done, in0+i, out0+o)
			return
		}
		c.finishProxy(env, log, p.Info, start, done, in0+i, out0+o)
	})
	c.mu.Lock()
	c.relay = sess
	kicked := c.kickReason != ""
	c.mu.Unlock()
	if kicked {
		sess.Kick() // a kick came before the relay was known to it
	}
}

// finishProxy ends a proxied session once its relay is over: the parting line after a kick,
// the registry, stats and log, and the connection itself.
func (c *Conn) finishProxy(env *Env, log *slog.Logger, info SessionInfo, start time.Time, done func(in, out int64), in, out int64) {
	c.mu.Lock()
	reason := c.kickReason
	c.mu.Unlock()
	if reason != "" {
		c.LastWord(reason)
	}
	d := time.Since(start)
	done(in, out)
	env.Stats.SessionFinished(info.Service, d, in, out)
	log.LogAttrs(context.Background(), slog.LevelInfo, "proxy session finished", slog.String("user", info.User),
		slog.Duration("duration", d), slog.Int64("in", in), slog.Int64("out", out), slog.String("kicked", reason))
	c.over()
}

func (c *Conn) kicked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kickReason != ""
}

// over finishes the connection and tells the connection set.
func (c *Conn) over() {
	c.Finish()
	if c.end != nil {
		c.end()
	}
}
