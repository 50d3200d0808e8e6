package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Server is one voter of the ring.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Servers returns the latest ring configuration this node knows, committed
// or not. On a fresh node that has not joined yet it is empty.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds a director to the ring, through the leader. Adding a member
// again with the same address succeeds and changes nothing.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return errors.New("cluster: add voter: empty id or address")
	}
	req := appendString(appendString([]byte{reqAdd}, id), addr)
	out, err := n.do(ctx, req, func(ctx context.Context) ([]byte, error) {
		return n.addLocal(ctx, id, addr)
	})
	return n.waitConfig(ctx, out, err)
}

// waitConfig waits until this node has applied the configuration change
// the leader answered with, so that Servers reflects it.
func (n *Node) waitConfig(ctx context.Context, out []byte, err error) error {
	if err != nil {
		return err
	}
	idx, k := binary.Uvarint(out)
	if k <= 0 {
		return fmt.Errorf("%w: bad answer", ErrUnavailable)
	}
	wctx, cancel := n.deadline(ctx)
	defer cancel()
	if err := n.waitApplied(wctx, idx); err != nil {
		n.log.Warn("cluster: committed ring change not yet applied here", "index", idx, "err", err)
	}
	return nil
}

// RemoveServer removes a director from the ring, through the leader.
// Removing an unknown ID succeeds and changes nothing.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	req := appendString([]byte{reqRemove}, id)
	out, err := n.do(ctx, req, func(ctx context.Context) ([]byte, error) {
		return n.removeLocal(ctx, id)
	})
	return n.waitConfig(ctx, out, err)
}

// addLocal and removeLocal answer the index of the configuration entry (0
// when nothing changed).
func (n *Node) addLocal(ctx context.Context, id, addr string) ([]byte, error) {
	if s, ok := n.member(id); ok && s.Address == raft.ServerAddress(addr) && s.Suffrage == raft.Voter {
		return binary.AppendUvarint(nil, 0), nil
	}
	f := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeLeft(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return nil, err
	}
	return binary.AppendUvarint(nil, f.Index()), nil
}

func (n *Node) removeLocal(ctx context.Context, id string) ([]byte, error) {
	if _, ok := n.member(id); !ok {
		return binary.AppendUvarint(nil, 0), nil
	}
	f := n.raft.RemoveServer(raft.ServerID(id), 0, timeLeft(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return nil, err
	}
	return binary.AppendUvarint(nil, f.Index()), nil
}

func (n *Node) member(id string) (raft.Server, bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			return s, true
		}
	}
	return raft.Server{}, false
}

// HasState reports whether this node has a ring configuration: it was
// bootstrapped, joined, or restarted from a state_dir.
func (n *Node) HasState() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// Bootstrap starts a new ring of this node and Config.Peers, for a node
// opened with NoBootstrap that found no ring to join. It does nothing if
// the node has state by now.
func (n *Node) Bootstrap() error {
	if n.HasState() {
		return nil
	}
	servers, err := parsePeers(n.cfg)
	if err != nil {
		return err
	}
	err = n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return nil
}

// Kick appends an OpKick entry: every director's OnKick observer sees it
// once it commits. It returns when the entry is committed.
func (n *Node) Kick(ctx context.Context, k Kick, now int64) error {
	_, err := n.Apply(ctx, Command{Op: OpKick, Tag: k.Tag, Hash: k.Hash, User: k.User, Text: k.Reason, Now: now, VhostCount: -1})
	return err
}
