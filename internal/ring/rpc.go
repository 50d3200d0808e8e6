package ring

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// Ring RPC: after the handshake, frames of a 4-byte big-endian length and
// a body, one request then one answer, repeated on a connection.
//
//	request: op (1), timeout in ms (4), payload
//	answer:  status (1: 0 ok, 1 error text), payload
const (
	opForward = 1 // payload: cluster forwarding request; answer: cluster's answer
	opJoin    = 2 // payload: id, addr as cluster strings; add the dialer as a voter
	opPing    = 3 // answer: role, applied index, leader id
)

const (
	maxFrame = 64 << 20
	// A pooled connection idle longer than this is closed rather than
	// reused: a request written into a connection the server has dropped
	// may or may not have been read, which would turn a clean retry into
	// an uncertain write. The server's idle limit is well above it.
	maxIdle        = 20 * time.Second
	serverIdle     = time.Minute
	maxIdlePerPeer = 8
	callTimeout    = 10 * time.Second
)

func writeFrame(w io.Writer, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+n), uint32(n))
	for _, p := range parts {
		b = append(b, p...)
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > maxFrame {
		return nil, fmt.Errorf("ring: frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

type rpcConn struct {
	net.Conn
	r    *bufio.Reader
	used time.Time
}

// rpcClient keeps a few idle connections per peer.
type rpcClient struct {
	m    *mux
	mu   sync.Mutex
	idle map[string][]*rpcConn
}

func (c *rpcClient) get(addr string, timeout time.Duration) (*rpcConn, error) {
	c.mu.Lock()
	for list := c.idle[addr]; len(list) > 0; list = c.idle[addr] {
		rc := list[len(list)-1]
		c.idle[addr] = list[:len(list)-1]
		if time.Since(rc.used) < maxIdle && rc.alive() {
			c.mu.Unlock()
			return rc, nil
		}
		rc.Close()
	}
	c.mu.Unlock()
	nc, err := c.m.dial(addr, protoRPC, timeout)
	if err != nil {
		return nil, err
	}
	return &rpcConn{Conn: nc, r: bufio.NewReader(nc)}, nil
}

// alive checks that the peer has not closed an idle connection (it does on
// shutdown), so a request is only written where it can be read: an EOF
// after writing would leave the request's fate unknown.
func (rc *rpcConn) alive() bool {
	_ = rc.SetReadDeadline(time.Now())
	_, err := rc.r.Peek(1)
	_ = rc.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *rpcClient) put(addr string, rc *rpcConn) {
	rc.used = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[addr]) >= maxIdlePerPeer {
		rc.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], rc)
}

func (c *rpcClient) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, list := range c.idle {
		for _, rc := range list {
			rc.Close()
		}
	}
	c.idle = map[string][]*rpcConn{}
}

// call sends one request. A failure to connect wraps
// cluster.ErrNotDelivered; after that, the request may have been executed.
func (c *rpcClient) call(ctx context.Context, addr string, op byte, payload []byte) ([]byte, error) {
	timeout := callTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: %w", cluster.ErrNotDelivered, context.DeadlineExceeded)
	}
	rc, err := c.get(addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", cluster.ErrNotDelivered, addr, err)
	}
	_ = rc.SetDeadline(time.Now().Add(timeout))
	head := binary.BigEndian.AppendUint32([]byte{op}, uint32(timeout/time.Millisecond))
	if err := writeFrame(rc, head, payload); err != nil {
		rc.Close()
		return nil, err
	}
	ans, err := readFrame(rc.r)
	if err != nil {
		rc.Close()
		return nil, err
	}
	_ = rc.SetDeadline(time.Time{})
	c.put(addr, rc)
	if len(ans) == 0 {
		return nil, errors.New("ring: empty answer")
	}
	if ans[0] != 0 {
		return nil, fmt.Errorf("ring: %s: %s", addr, ans[1:])
	}
	return ans[1:], nil
}

// serveRPC answers requests on one connection until it closes or idles.
func (r *Ring) serveRPC(c net.Conn) {
	defer c.Close()
	peer := ""
	if cc, ok := c.(*countingConn); ok {
		peer = cc.addr
	}
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(serverIdle))
		req, err := readFrame(br)
		if err != nil {
			return
		}
		if len(req) < 5 {
			return
		}
		op := req[0]
		timeout := time.Duration(binary.BigEndian.Uint32(req[1:5])) * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		ans := r.handle(ctx, peer, op, req[5:])
		cancel()
		_ = c.SetWriteDeadline(time.Now().Add(callTimeout))
		if err := writeFrame(c, ans); err != nil {
			return
		}
	}
}

// handle answers one request from peer, the ring address the dialer
// authenticated with.
func (r *Ring) handle(ctx context.Context, peer string, op byte, payload []byte) []byte {
	switch op {
	case opForward:
		return append([]byte{0}, r.node.HandleForward(ctx, payload)...)
	case opJoin:
		id, addr, err := decodeJoin(payload)
		if err == nil && !r.node.HasState() {
			// Starting fresh too: answer at once, so that directors
			// started together all reach their bootstrap in time.
			err = errors.New("not in a ring yet")
		}
		if err == nil {
			err = r.mayJoin(peer, id, addr)
		}
		if err == nil {
			r.log.Info("ring: director asks to join", "id", id, "addr", addr)
			err = r.node.AddVoter(ctx, id, addr)
		}
		if err != nil {
			return append([]byte{1}, err.Error()...)
		}
		return []byte{0}
	case opPing:
		_, leader := r.node.Leader()
		b := []byte{0}
		b = appendStr(b, r.node.Role())
		b = binary.AppendUvarint(b, r.node.AppliedIndex())
		return appendStr(b, leader)
	}
	return append([]byte{1}, "unknown request"...)
}

// mayJoin refuses a join unless the director asks for itself (the address
// it authenticated with) and is listed in director_servers or already a
// member (added with DIRECTOR-ADD). Knowing the ring secret alone does not
// make an address a voter: one forged voter can cost the ring its quorum.
func (r *Ring) mayJoin(peer, id, addr string) error {
	var err error
	switch {
	case id != addr || addr != peer:
		err = errors.New("a director may only ask to join for itself")
	case contains(r.cfg.Peers, addr):
		return nil
	default:
		servers, serr := r.node.Servers()
		if serr != nil {
			return serr
		}
		for _, s := range servers {
			if s.ID == id && s.Address == addr {
				return nil
			}
		}
		err = errors.New("not in director_servers and not added with DIRECTOR-ADD")
	}
	r.log.Warn("ring: join refused", "peer", peer, "id", id, "addr", addr, "err", err)
	return fmt.Errorf("join refused: %w", err)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readStr(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errors.New("ring: bad string")
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

func decodeJoin(b []byte) (id, addr string, err error) {
	if id, b, err = readStr(b); err != nil {
		return
	}
	if addr, b, err = readStr(b); err != nil {
		return
	}
	if len(b) != 0 || id == "" || addr == "" {
		err = errors.New("ring: bad join request")
	}
	return
}
