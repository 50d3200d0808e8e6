package authclient

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/tabescape"
)

var timeZero time.Time

// Mech is a SASL mechanism the service offers, with its flags (plaintext, dictionary, ...).
type Mech struct {
	Name  string
	Flags []string
}

// Request is one authentication as a login process asks for it.
type Request struct {
	Mech    string // one of Mechs(); the service drops a connection that names another
	Service string // imap, pop3, sieve, lmtp: what the passdb sees as %s

	LocalIP, RemoteIP     netip.Addr // the client's connection, as the front-end saw it
	LocalPort, RemotePort uint16

	// Secured says the client's connection is TLS (or otherwise trusted not to be sniffed),
	// which a passdb may require for plaintext mechanisms.
	Secured   bool
	NoPenalty bool   // the service should not delay failures for this client
	Session   string // the front-end's session id, for the service's log
	LocalName string // the TLS SNI the client asked for

	// Initial is the SASL initial response; HasInitial tells an empty one ("=") from none.
	Initial    []byte
	HasInitial bool
}

// ErrClosed is returned for requests on a connection that has ended.
var ErrClosed = errors.New("authclient: connection to the auth service closed")

// Client is one connection to an auth service. Requests are multiplexed on it by id, as
// Dovecot's login processes do; it is safe for concurrent use. A Client whose connection
// ended stays ended (Err says why); Pool dials a new one.
type Client struct {
	conn  net.Conn
	mechs []Mech

	wmu sync.Mutex // one line at a time
	w   *bufio.Writer

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan Reply
	err     error // set once, when the connection ends
	done    chan struct{}
}

// Dial connects to an auth service at addr ("unix" path or "tcp" host:port) and does the
// handshake.
func Dial(ctx context.Context, network, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("authclient: %w", err)
	}
	c, err := handshake(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func handshake(ctx context.Context, conn net.Conn) (*Client, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A caller that gives up ends the handshake at once, not at the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "VERSION\t1\t2\nCPID\t%d\n", os.Getpid())
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("authclient: handshake: %w", err)
	}
	r := bufio.NewReaderSize(conn, 4096)
	c := &Client{conn: conn, w: w, pending: map[uint32]chan Reply{}, done: make(chan struct{})}
	sawVersion := false
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, fmt.Errorf("authclient: handshake: %w", err)
		}
		f := strings.Split(line, "\t")
		switch f[0] {
		case "VERSION":
			if len(f) < 3 || f[1] != "1" {
				return nil, fmt.Errorf("%w: auth service speaks version %q, not 1.x", ErrProtocol, clip(line))
			}
			sawVersion = true
		case "MECH":
			if len(f) < 2 || f[1] == "" {
				return nil, fmt.Errorf("%w: MECH without a name", ErrProtocol)
			}
			c.mechs = append(c.mechs, Mech{Name: strings.ToUpper(f[1]), Flags: f[2:]})
		case "DONE":
			if !sawVersion {
				return nil, fmt.Errorf("%w: handshake without VERSION", ErrProtocol)
			}
			if !stop() {
				return nil, fmt.Errorf("authclient: handshake: %w", ctx.Err())
			}
			conn.SetDeadline(timeZero)
			go c.read(r)
			return c, nil
		}
		// SPID, CUID and COOKIE matter to Dovecot's own post-login (master) handoff only.
	}
}

// readLine reads one LF-terminated line of at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(b)+len(frag) > maxLine+1 {
			return "", fmt.Errorf("%w: line over %d bytes", ErrProtocol, maxLine)
		}
		b = append(b, frag...)
		if err == nil {
			return strings.TrimSuffix(string(b[:len(b)-1]), "\r"), nil
		}
		if err != bufio.ErrBufferFull {
			return "", err
		}
	}
}

// read dispatches replies to their requests until the connection ends.
func (c *Client) read(r *bufio.Reader) {
	var err error
	for {
		var line string
		if line, err = readLine(r); err != nil {
			break
		}
		id, reply, perr := ParseReply(line)
		if perr != nil {
			err = perr
			break
		}
		c.mu.Lock()
		ch := c.pending[id]
		if reply.Kind != Cont {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		if ch != nil {
			ch <- reply // buffered: one reply outstanding per request
		}
	}
	c.fail(err)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrClosed, err)
		close(c.done)
		c.pending = nil
	}
	c.mu.Unlock()
	c.conn.Close()
}

// Err is why the connection ended, nil while it works.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection; requests waiting on it get ErrClosed.
func (c *Client) Close() error {
	c.fail(errors.New("closed"))
	return nil
}

// Mechs lists the mechanisms the service offered at the handshake.
func (c *Client) Mechs() []Mech { return append([]Mech(nil), c.mechs...) }

// HasMech reports whether the service offers name.
func (c *Client) HasMech(name string) bool {
	for _, m := range c.mechs {
		if strings.EqualFold(m.Name, name) {
			return true
		}
	}
	return false
}

// Exchange is one request in progress: after a CONT reply, Continue sends the client's
// response; after OK or FAIL it is over.
type Exchange struct {
	c  *Client
	id uint32
	ch chan Reply
}

// Start sends an AUTH request and returns its first reply.
func (c *Client) Start(ctx context.Context, req Request) (*Exchange, Reply, error) {
	line, err := req.line()
	if err != nil {
		return nil, Reply{}, err
	}
	if !c.HasMech(req.Mech) {
		// The service would drop the whole connection, and every request on it.
		return nil, Reply{}, fmt.Errorf("authclient: mechanism %q is not offered by the auth service", req.Mech)
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, Reply{}, c.err
	}
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	e := &Exchange{c: c, id: c.nextID, ch: make(chan Reply, 1)}
	c.pending[e.id] = e.ch
	c.mu.Unlock()
	if err := c.send("AUTH\t" + strconv.FormatUint(uint64(e.id), 10) + "\t" + line); err != nil {
		return nil, Reply{}, err
	}
	r, err := e.wait(ctx)
	return e, r, err
}

// Continue answers a CONT challenge with the client's response.
func (e *Exchange) Continue(ctx context.Context, resp []byte) (Reply, error) {
	if err := e.c.send("CONT\t" + strconv.FormatUint(uint64(e.id), 10) + "\t" + base64.StdEncoding.EncodeToString(resp)); err != nil {
		return Reply{}, err
	}
	return e.wait(ctx)
}

// Cancel tells the service the client gave up (SASL "*") and forgets the request.
func (e *Exchange) Cancel() {
	e.forget()
	_ = e.c.send("CANCEL\t" + strconv.FormatUint(uint64(e.id), 10))
}

func (e *Exchange) forget() {
	e.c.mu.Lock()
	if e.c.pending != nil {
		delete(e.c.pending, e.id)
	}
	e.c.mu.Unlock()
}

func (e *Exchange) wait(ctx context.Context) (Reply, error) {
	select {
	case r := <-e.ch:
		return r, nil
	case <-e.c.done:
		return Reply{}, e.c.Err()
	case <-ctx.Done():
		e.forget()
		return Reply{}, fmt.Errorf("authclient: waiting for the auth service: %w", ctx.Err())
	}
}

func (c *Client) send(line string) error {
	if len(line) >= maxLine {
		return fmt.Errorf("authclient: request line of %d bytes over the protocol's %d", len(line), maxLine)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	c.w.WriteString(line)
	c.w.WriteByte('\n')
	if err := c.w.Flush(); err != nil {
		c.fail(err)
		return c.Err()
	}
	return nil
}

// line builds the part of the AUTH line after the id; every value is tab-escaped, and names
// that go bare (mechanism, service) must be tokens.
func (r *Request) line() (string, error) {
	if !isToken(r.Mech) || !isToken(r.Service) {
		return "", fmt.Errorf("authclient: mechanism %q or service %q is not a token", clip(r.Mech), clip(r.Service))
	}
	var b strings.Builder
	b.WriteString(strings.ToUpper(r.Mech))
	b.WriteString("\tservice=" + r.Service)
	if r.Secured {
		b.WriteString("\tsecured")
	}
	if r.NoPenalty {
		b.WriteString("\tno-penalty")
	}
	field := func(k, v string) {
		if v != "" {
			b.WriteString("\t" + k + "=" + tabescape.Escape(v))
		}
	}
	if r.LocalIP.IsValid() {
		field("lip", r.LocalIP.Unmap().String())
	}
	if r.RemoteIP.IsValid() {
		field("rip", r.RemoteIP.Unmap().String())
	}
	if r.LocalPort != 0 {
		field("lport", strconv.Itoa(int(r.LocalPort)))
	}
	if r.RemotePort != 0 {
		field("rport", strconv.Itoa(int(r.RemotePort)))
	}
	field("session", r.Session)
	field("local_name", r.LocalName)
	if r.HasInitial {
		// Last, as Dovecot's login processes send it; base64 needs no escaping.
		b.WriteString("\tresp=" + base64.StdEncoding.EncodeToString(r.Initial))
	}
	return b.String(), nil
}

func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Pool keeps one connection to an auth service and dials a new one when it has ended (the
// service restarted, say). Safe for concurrent use.
type Pool struct {
	network, addr string

	mu sync.Mutex
	c  *Client
}

// NewPool returns a Pool for the auth service at addr; it dials on first use.
func NewPool(network, addr string) *Pool { return &Pool{network: network, addr: addr} }

// Client returns the live connection, dialling one if there is none.
func (p *Pool) Client(ctx context.Context) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil && p.c.Err() == nil {
		return p.c, nil
	}
	c, err := Dial(ctx, p.network, p.addr)
	if err != nil {
		return nil, err
	}
	p.c = c
	return c, nil
}

// Close ends the current connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}
