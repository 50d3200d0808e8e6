package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/raft"
)

// Forwarder carries a request from a follower to the leader at leaderAddr
// (its raft address) and returns the leader's answer from HandleForward.
// The ring package implements it over the ring port.
//
// It must wrap ErrNotDelivered when the request certainly did not reach the
// leader (dial or handshake failed): the node then retries, perhaps on a new
// leader. Any other error means the request may have been executed.
type Forwarder interface {
	Forward(ctx context.Context, leaderAddr string, req []byte) ([]byte, error)
}

// ErrNotDelivered: see Forwarder.
var ErrNotDelivered = errors.New("cluster: request not delivered")

// errNotLeader marks an attempt that was refused before anything was
// appended, so it is safe to retry.
var errNotLeader = errors.New("cluster: not the leader")

// Kick is an OpKick entry as the OnKick observer sees it: close the sessions
// of User (login name) if set, else of Hash in Tag.
type Kick struct {
	Tag    string
	Hash   uint32
	User   string
	Reason string
}

// Request kinds of the forwarding protocol.
const (
	reqApply  = 1 // command bytes
	reqAdd    = 2 // id, addr: add a voter
	reqRemove = 3 // id: remove a server
)

// Answer status of the forwarding protocol.
const (
	ansOK          = 0 // result, log index
	ansNotLeader   = 1 // nothing done, try the current leader
	ansUnavailable = 2 // message; may or may not have been applied
)

// retryPoll is how often a write waiting for a leader looks again.
const retryPoll = 20 * time.Millisecond

// deadline bounds one write: the caller's context, and ApplyTimeout.
func (n *Node) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// do runs a write where the leader is, waiting for one while none is
// known. local runs it on this node when it leads; req is what a follower
// forwards. It returns the leader's answer payload after ansOK.
func (n *Node) do(ctx context.Context, req []byte, local func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	ctx, cancel := n.deadline(ctx)
	defer cancel()
	t := time.NewTicker(retryPoll)
	defer t.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: no leader reachable: %w", ErrUnavailable, err)
		}
		if n.closed.Load() {
			return nil, fmt.Errorf("%w: node closed", ErrUnavailable)
		}
		addr, id := n.raft.LeaderWithID()
		var out []byte
		var err error
		switch {
		case id == raft.ServerID(n.cfg.NodeID):
			out, err = local(ctx)
		case addr == "" || n.cfg.Forward == nil:
			err = errNotLeader
		default:
			out, err = n.forward(ctx, string(addr), req)
		}
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, errNotLeader) && !errors.Is(err, ErrNotDelivered) {
			return nil, err
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (n *Node) forward(ctx context.Context, addr string, req []byte) ([]byte, error) {
	ans, err := n.cfg.Forward.Forward(ctx, addr, req)
	if err != nil {
		if errors.Is(err, ErrNotDelivered) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: forwarding to %s: %w", ErrUnavailable, addr, err)
	}
	if len(ans) == 0 {
		return nil, fmt.Errorf("%w: empty answer from %s", ErrUnavailable, addr)
	}
	switch ans[0] {
	case ansOK:
		return ans[1:], nil
	case ansNotLeader:
		return nil, errNotLeader
	default:
		return nil, fmt.Errorf("%w: leader %s: %s", ErrUnavailable, addr, ans[1:])
	}
}

// HandleForward executes a request a follower forwarded here. The answer
// is always a well-formed reply for Forwarder to carry back; the error is
// for logging only.
func (n *Node) HandleForward(ctx context.Context, req []byte) []byte {
	d := decoder{b: req}
	kind := d.byte()
	var out []byte
	var err error
	switch kind {
	case reqApply:
		var c Command
		if err = c.UnmarshalBinary(d.b); err == nil {
			out, err = n.applyLocal(ctx, d.b)
		}
	case reqAdd:
		id, addr := d.str(), d.str()
		if err = d.finish("request"); err == nil {
			out, err = n.addLocal(ctx, id, addr)
		}
	case reqRemove:
		id := d.str()
		if err = d.finish("request"); err == nil {
			out, err = n.removeLocal(ctx, id)
		}
	default:
		err = fmt.Errorf("cluster: unknown request %d", kind)
	}
	switch {
	case err == nil:
		return append([]byte{ansOK}, out...)
	case errors.Is(err, errNotLeader):
		return []byte{ansNotLeader}
	default:
		return append([]byte{ansUnavailable}, err.Error()...)
	}
}

// raftErr sorts raft's future errors into retryable and not.
func raftErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) {
		return errNotLeader
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func timeLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return defaultApplyTimeout
}

// applyLocal appends data on this node, the leader, and answers the
// encoded result and index once the entry is applied here.
func (n *Node) applyLocal(ctx context.Context, data []byte) ([]byte, error) {
	timeout := timeLeft(ctx)
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, context.DeadlineExceeded)
	}
	f := n.raft.Apply(data, timeout)
	if err := waitFuture(ctx, f); err != nil {
		return nil, err
	}
	res, ok := f.Response().(Result)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected FSM response %T", ErrUnavailable, f.Response())
	}
	return appendResult(nil, res, f.Index()), nil
}

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return raftErr(err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// Result encoding for forwarded answers: code, user, dropped, log index,
// then, only when there are any, the count and addresses of Hosts.
func appendResult(b []byte, r Result, index uint64) []byte {
	b = append(b, byte(r.Code))
	b = appendString(b, r.User.Tag)
	b = binary.BigEndian.AppendUint32(b, r.User.Hash)
	b = appendAddr(b, r.User.Host)
	b = binary.AppendVarint(b, r.User.Timestamp)
	b = binary.AppendUvarint(b, uint64(r.Dropped))
	b = binary.AppendUvarint(b, index)
	if len(r.Hosts) > 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Hosts)))
		for _, h := range r.Hosts {
			b = appendAddr(b, h)
		}
	}
	return b
}

func decodeResult(b []byte) (Result, uint64, error) {
	d := decoder{b: b}
	var r Result
	r.Code = Code(d.byte())
	r.User.Tag = d.str()
	r.User.Hash = d.u32()
	r.User.Host = d.addr()
	r.User.Timestamp = d.varint()
	r.Dropped = int(d.uvarint())
	idx := d.uvarint()
	if d.err == nil && len(d.b) > 0 {
		r.Hosts = make([]netip.Addr, d.count(1))
		for i := range r.Hosts {
			r.Hosts[i] = d.addr()
		}
	}
	return r, idx, d.finish("result")
}
