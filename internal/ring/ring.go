// Package ring makes several directors one: it runs the cluster node over
// an authenticated ring port shared by raft and usher's ring RPC (writes
// forwarded to the leader, joins, pings), changes membership, and renders
// DIRECTOR-LIST. See docs/cluster.md.
package ring

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// Config configures a Ring.
type Config struct {
	Dir    string   // raft state (state_dir/raft)
	Self   string   // own ring address ip:port; it is also the raft ID
	Peers  []string // director_servers as ip:port; Self may be listed
	Secret string   // director_ring_secret; never logged
	TLS    *tls.Config
	Logger *slog.Logger

	ApplyTimeout time.Duration      // see cluster.Config
	OnKick       func(cluster.Kick) // see cluster.Config
	JoinTimeout  time.Duration      // how long a fresh director looks for a ring to join; default 3 s
	PingInterval time.Duration      // status pings; default 1 s

	SnapshotThreshold, TrailingLogs uint64        // 0 = cluster defaults
	SnapshotInterval                time.Duration // 0 = cluster default
}

// Ring is a running director of the ring.
type Ring struct {
	cfg   Config
	log   *slog.Logger
	mux   *mux
	rpc   *rpcClient
	peers *peerTable
	node  *cluster.Node

	stop      chan struct{}
	wg        sync.WaitGroup
	connMu    sync.Mutex
	conns     map[net.Conn]struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open listens on cfg.Self, opens the state in cfg.Dir and joins or
// bootstraps the ring (docs/cluster.md, Membership). It does not wait for a
// leader: call Node().WaitReady.
func Open(cfg Config) (*Ring, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = 3 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	var others []string
	for _, p := range cfg.Peers {
		if p != cfg.Self && !contains(others, p) {
			others = append(others, p)
		}
	}
	if len(others) > 0 && cfg.Secret == "" && !mutualTLS(cfg.TLS) {
		// Without either, anyone who reaches the ring port could speak
		// raft and make itself a voter.
		return nil, errors.New("ring: a ring of several directors needs director_ring_secret (or director_ring_ssl, which verifies client certificates)")
	}
	ln, err := net.Listen("tcp", cfg.Self)
	if err != nil {
		return nil, fmt.Errorf("ring: listen %s: %w", cfg.Self, err)
	}
	r := &Ring{cfg: cfg, log: cfg.Logger, peers: newPeerTable(time.Now), stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	r.mux = newMux(ln, cfg.Self, []byte(cfg.Secret), cfg.TLS, cfg.Logger, r.peers)
	r.rpc = &rpcClient{m: r.mux, idle: map[string][]*rpcConn{}}
	node, err := cluster.Open(cluster.Config{
		Dir: cfg.Dir, NodeID: cfg.Self, BindAddr: cfg.Self, Peers: others,
		Logger: cfg.Logger, ApplyTimeout: cfg.ApplyTimeout,
		Stream: raftLayer{r.mux}, Forward: r, OnKick: cfg.OnKick,
		NoBootstrap:       len(others) > 0,
		SnapshotThreshold: cfg.SnapshotThreshold, TrailingLogs: cfg.TrailingLogs,
		SnapshotInterval: cfg.SnapshotInterval,
	})
	if err != nil {
		r.mux.close()
		r.mux.wait()
		return nil, err
	}
	r.node = node
	r.wg.Add(2)
	go r.acceptRPC()
	go r.probe()
	if !node.HasState() {
		if err := r.joinOrBootstrap(others); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// mutualTLS reports whether c makes both sides of a ring connection prove
// a certificate.
func mutualTLS(c *tls.Config) bool {
	return c != nil && c.ClientAuth == tls.RequireAndVerifyClientCert
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Node is the replicated state; its Apply forwards to the leader.
func (r *Ring) Node() *cluster.Node { return r.node }

// Forward implements cluster.Forwarder over the ring RPC.
func (r *Ring) Forward(ctx context.Context, leaderAddr string, req []byte) ([]byte, error) {
	return r.rpc.call(ctx, leaderAddr, opForward, req)
}

// joinOrBootstrap asks the listed directors to add this one. If none
// answers from a running ring within JoinTimeout, every listed director is
// starting fresh, and all of them bootstrap the same configuration.
func (r *Ring) joinOrBootstrap(others []string) error {
	deadline := time.Now().Add(r.cfg.JoinTimeout)
	req := appendStr(appendStr(nil, r.cfg.Self), r.cfg.Self)
	for time.Now().Before(deadline) && !r.node.HasState() {
		for _, p := range others {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := r.rpc.call(ctx, p, opJoin, req)
			cancel()
			if err == nil {
				r.log.Info("ring: joined", "via", p)
				return nil
			}
			if errors.Is(err, errAuth) {
				return fmt.Errorf("ring: joining via %s: %w", p, err)
			}
		}
		select {
		case <-r.stop:
			return errors.New("ring: closed")
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.log.Info("ring: no running ring found; bootstrapping", "directors", len(others)+1)
	return r.node.Bootstrap()
}

func (r *Ring) acceptRPC() {
	defer r.wg.Done()
	for {
		select {
		case c := <-r.mux.rpcConns:
			r.connMu.Lock()
			r.conns[c] = struct{}{}
			r.connMu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serveRPC(c)
				r.connMu.Lock()
				delete(r.conns, c)
				r.connMu.Unlock()
			}()
		case <-r.stop:
			return
		}
	}
}

// Close leaves the ring's traffic (not its membership: a director that
// restarts comes back as the same voter), snapshots and closes the state.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		if r.node != nil {
			r.closeErr = r.node.Close()
		}
		r.rpc.closeAll()
		r.mux.close()
		r.connMu.Lock()
		for c := range r.conns {
			c.Close()
		}
		r.connMu.Unlock()
		r.wg.Wait()
		r.mux.wait()
	})
	return r.closeErr
}
