package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrUnavailable means the command was not (or not known to be) applied:
// this node is not the leader, there is no quorum, the node is shutting
// down, or the context ended first. Callers answer it as a temporary failure
// (doveadm exit 75, IMAP NO [UNAVAILABLE]). Test with errors.Is.
var ErrUnavailable = errors.New("cluster: state unavailable")

// Config configures a Node.
type Config struct {
	Dir          string        // state_dir: raft.db and snapshots/
	NodeID       string        // raft server ID; default BindAddr, or "usher"
	BindAddr     string        // ring address (ip:port); "" = in-memory transport, single node
	Peers        []string      // other voters as "addr" or "id=addr"; needs BindAddr
	Logger       *slog.Logger  // default slog.Default()
	ApplyTimeout time.Duration // bound of one write, waiting for a leader included

	// Stream, if set, carries raft traffic instead of a plain TCP listener
	// on BindAddr (the ring package multiplexes its RPC and authenticates).
	Stream raft.StreamLayer
	// Forward carries writes from a follower to the leader; nil means a
	// follower refuses writes with ErrUnavailable.
	Forward Forwarder
	// OnKick observes committed OpKick entries on every node. It runs on
	// raft's apply goroutine: it must not block or call Apply.
	OnKick func(Kick)
	// NoBootstrap leaves a fresh node without a configuration, to join a
	// running ring (or call Bootstrap later).
	NoBootstrap bool
	// Snapshot tuning; 0 = the defaults below. Tests lower them.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
}

// Tuning for a mail site: a director group-commits its logins (thousands per
// entry under load, about 20 bytes each), a snapshot of a million users is
// about 7 MB.
const (
	defaultApplyTimeout = 10 * time.Second
	snapshotThreshold   = 16384
	snapshotInterval    = 3 * time.Minute
	trailingLogs        = 10240
	snapshotsRetained   = 2
	openReadyTimeout    = 30 * time.Second
	readyPoll           = 20 * time.Millisecond
)

// Node is one member of the replicated director state.
type Node struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans raft.Transport

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open starts a node on cfg.Dir, bootstrapping a new cluster of cfg.NodeID
// and cfg.Peers if the directory holds no raft state yet. A single node
// (no Peers) waits until it leads and has replayed its log before
// returning; with peers, call WaitReady.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = defaultApplyTimeout
	}
	if cfg.NodeID == "" {
		cfg.NodeID = cfg.BindAddr
		if cfg.NodeID == "" {
			cfg.NodeID = "usher"
		}
	}
	servers, err := parsePeers(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fsm: &fsm{state: NewState(), log: cfg.Logger}}
	if err := n.start(servers); err != nil {
		if n.raft != nil {
			n.raft.Shutdown()
		}
		n.closeStores()
		return nil, err
	}
	if len(cfg.Peers) == 0 && !cfg.NoBootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), openReadyTimeout)
		defer cancel()
		if err := n.WaitReady(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func parsePeers(cfg Config) ([]raft.Server, error) {
	if cfg.BindAddr == "" && (len(cfg.Peers) > 0 || cfg.Stream != nil) {
		return nil, errors.New("cluster: peers need a BindAddr")
	}
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.BindAddr)}
	servers := []raft.Server{self}
	for _, p := range cfg.Peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			id, addr = p, p
		}
		if id == "" || addr == "" {
			return nil, fmt.Errorf("cluster: bad peer %q", p)
		}
		if raft.ServerID(id) == self.ID {
			continue
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)})
	}
	return servers, nil
}

func (n *Node) start(servers []raft.Server) error {
	hlog := newHclog(n.log)
	path := filepath.Join(n.cfg.Dir, "raft.db")
	if err := checkStore(path); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		// Fail instead of hanging when another process holds the database.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return fmt.Errorf("cluster: open log store: %w", err)
	}
	n.store = store
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.Dir, snapshotsRetained, hlog)
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	switch {
	case n.cfg.Stream != nil:
		n.trans = raft.NewNetworkTransportWithLogger(n.cfg.Stream, 3, 10*time.Second, hlog)
	case n.cfg.BindAddr == "":
		_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.cfg.NodeID))
		servers[0].Address = raft.ServerAddress(n.cfg.NodeID)
	default:
		t, err := raft.NewTCPTransportWithLogger(n.cfg.BindAddr, nil, 3, 10*time.Second, hlog)
		if err != nil {
			return fmt.Errorf("cluster: listen %s: %w", n.cfg.BindAddr, err)
		}
		n.trans = t
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = hlog
	rc.SnapshotThreshold = cmp.Or(n.cfg.SnapshotThreshold, snapshotThreshold)
	rc.SnapshotInterval = cmp.Or(n.cfg.SnapshotInterval, snapshotInterval)
	rc.TrailingLogs = cmp.Or(n.cfg.TrailingLogs, trailingLogs)
	if len(servers) == 1 {
		// A ring of one has nobody to disagree with: elect at once.
		rc.HeartbeatTimeout = 50 * time.Millisecond
		rc.ElectionTimeout = 50 * time.Millisecond
		rc.LeaderLeaseTimeout = 50 * time.Millisecond
	}

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// Kick entries up to here are replays of a previous run.
	if n.fsm.kickAfter, err = logs.LastIndex(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.fsm.onKick = n.cfg.OnKick
	r, err := raft.NewRaft(rc, n.fsm, logs, store, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	if !existing && !n.cfg.NoBootstrap {
		err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	return nil
}

// WaitReady waits until a leader is known. On the leader it also waits
// until every committed entry is applied, so reads see all earlier writes.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		addr, id := n.raft.LeaderWithID()
		if id == raft.ServerID(n.cfg.NodeID) {
			timeout := n.cfg.ApplyTimeout
			if dl, ok := ctx.Deadline(); ok {
				timeout = min(timeout, time.Until(dl))
			}
			if err := n.raft.Barrier(timeout).Error(); err == nil {
				return nil
			}
		} else if addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no leader: %w", ErrUnavailable, ctx.Err())
		case <-t.C:
		}
	}
}

// Apply replicates c and returns its result once it is committed and
// applied on this node. On a follower it is forwarded to the leader. While
// no leader is reachable it waits, up to ctx and ApplyTimeout. Any failure
// wraps ErrUnavailable; after a failure other than "no leader" the command
// may still be applied later.
func (n *Node) Apply(ctx context.Context, c Command) (Result, error) {
	data, err := c.MarshalBinary()
	if err != nil {
		return Result{}, err
	}
	req := append([]byte{reqApply}, data...)
	out, err := n.do(ctx, req, func(ctx context.Context) ([]byte, error) { return n.applyLocal(ctx, data) })
	if err != nil {
		return Result{}, err
	}
	res, idx, err := decodeResult(out)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Read your writes: the caller reads this node's copy next. The entry
	// is committed, so a lagging copy is not a failure of the write.
	wctx, cancel := n.deadline(ctx)
	defer cancel()
	if err := n.waitApplied(wctx, idx); err != nil {
		n.log.Warn("cluster: committed write not yet applied here", "index", idx, "err", err)
	}
	return res, nil
}

// waitApplied waits until the entry at idx is applied here. raft's own
// applied index covers entries that arrived inside a snapshot.
func (n *Node) waitApplied(ctx context.Context, idx uint64) error {
	for n.raft.AppliedIndex() < idx {
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := n.fsm.waitApplied(wctx, idx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// AppliedIndex is the index of the last entry applied here.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// LastContact is when this node last heard from the leader (zero if never;
// the current time on the leader).
func (n *Node) LastContact() time.Time {
	if n.IsLeader() {
		return time.Now()
	}
	return n.raft.LastContact()
}

// Role is raft's state of this node: Leader, Follower, Candidate, Shutdown.
func (n *Node) Role() string { return n.raft.State().String() }

// ID is this node's raft server ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Leader returns the current leader's address and ID, empty if unknown.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// IsLeader reports whether this node currently leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Stats returns raft's state (state, term, last_log_index, applied_index,
// ...) plus fsm_hosts and fsm_users.
func (n *Node) Stats() map[string]string {
	st := n.raft.Stats()
	n.fsm.mu.RLock()
	st["fsm_hosts"] = fmt.Sprint(len(n.fsm.state.hosts))
	st["fsm_users"] = fmt.Sprint(n.fsm.state.UserTotal())
	n.fsm.mu.RUnlock()
	return st
}

// Close snapshots (so the next start need not replay the log), stops raft
// and closes the stores. Later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			n.log.Warn("cluster: snapshot on close failed", "err", err)
		}
		n.closeErr = n.raft.Shutdown().Error()
		if err := n.closeStores(); n.closeErr == nil {
			n.closeErr = err
		}
	})
	return n.closeErr
}

func (n *Node) closeStores() error {
	var err error
	if c, ok := n.trans.(interface{ Close() error }); ok {
		err = c.Close()
	}
	if n.store != nil {
		if cerr := n.store.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
